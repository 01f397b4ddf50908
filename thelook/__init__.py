"""The shop's source side: the raw thelook_ecommerce schema, its export loader and simulator."""
