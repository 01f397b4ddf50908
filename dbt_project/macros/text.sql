{#
  Text repair for catalogue strings, shared by every staging model that reads them.

  The real catalogue holds HTML entities (`89th &#x0026; Madison`, which would carry the
  `;` separator into a sequence) and mojibake: UTF-8 text that was once decoded as
  Windows-1252 (`Hook & TackleÂ®`, `Bianca NygÃ¥rd`). The repair table below was generated
  from Python's codecs (ch.encode('utf-8').decode('cp1252') for Latin-1 and common
  punctuation) and is applied only to the distinct catalogue values that contain one of
  the telltale lead characters.
#}

{% macro clean_text(column) -%}
    nullif(nullif(trim({{ column }}), ''), 'null')
{%- endmacro %}

{# Entities decoded, trimmed, ';' made harmless, 'null' and '' as NULL. #}
{% macro clean_catalogue_text(column) -%}
    nullif(nullif(replace(trim({{ decode_html_entities(column) }}), ';', ','), ''), 'null')
{%- endmacro %}

{% macro decode_html_entities(column) -%}
    {%- set entities = [
        ('&#x0026;', '&'), ('&#38;', '&'), ('&amp;', '&'),
        ('&#x0027;', "'"), ('&#39;', "'"), ('&apos;', "'"),
        ('&#x0022;', '"'), ('&#34;', '"'), ('&quot;', '"'),
        ('&lt;', '<'), ('&gt;', '>'),
    ] -%}
    {%- set ns = namespace(sql=column) -%}
    {%- for entity, text in entities -%}
        {%- set ns.sql = "replace(" ~ ns.sql ~ ", " ~ string_literal(entity) ~ ", " ~ string_literal(text) ~ ")" -%}
    {%- endfor -%}
    {{ ns.sql }}
{%- endmacro %}

{% macro regexp_contains_mojibake(text) -%}
    {{ return(adapter.dispatch('regexp_contains_mojibake', 'nextbuy')(text)) }}
{%- endmacro %}

{% macro default__regexp_contains_mojibake(text) -%}
    regexp_matches({{ text }}, '[ÂÃâ]')
{%- endmacro %}

{% macro bigquery__regexp_contains_mojibake(text) -%}
    regexp_contains({{ text }}, r'[ÂÃâ]')
{%- endmacro %}

{#
  The repair table as a relation (step, broken, fixed), longest sequences first, for
  stg_thelook__products to apply step by step in a recursive CTE: a flat query instead
  of a hundred nested replace() calls, which neither BigQuery nor a SQL parser enjoys.
#}
{% macro mojibake_repairs() -%}
    {%- set repairs = [
    ('â€“', '–'),
    ('â€”', '—'),
    ('â€˜', '‘'),
    ('â€™', '’'),
    ('â€œ', '“'),
    ('â€¢', '•'),
    ('â€¦', '…'),
    ('â„¢', '™'),
    ('âˆ’', '−'),
    ('â‚¬', '€'),
    ('Â ', ' '),
    ('Â¡', '¡'),
    ('Â¢', '¢'),
    ('Â£', '£'),
    ('Â¤', '¤'),
    ('Â¥', '¥'),
    ('Â¦', '¦'),
    ('Â§', '§'),
    ('Â¨', '¨'),
    ('Â©', '©'),
    ('Âª', 'ª'),
    ('Â«', '«'),
    ('Â¬', '¬'),
    ('Â­', '­'),
    ('Â®', '®'),
    ('Â¯', '¯'),
    ('Â°', '°'),
    ('Â±', '±'),
    ('Â²', '²'),
    ('Â³', '³'),
    ('Â´', '´'),
    ('Âµ', 'µ'),
    ('Â¶', '¶'),
    ('Â·', '·'),
    ('Â¸', '¸'),
    ('Â¹', '¹'),
    ('Âº', 'º'),
    ('Â»', '»'),
    ('Â¼', '¼'),
    ('Â½', '½'),
    ('Â¾', '¾'),
    ('Â¿', '¿'),
    ('Ã€', 'À'),
    ('Ã‚', 'Â'),
    ('Ãƒ', 'Ã'),
    ('Ã„', 'Ä'),
    ('Ã…', 'Å'),
    ('Ã†', 'Æ'),
    ('Ã‡', 'Ç'),
    ('Ãˆ', 'È'),
    ('Ã‰', 'É'),
    ('ÃŠ', 'Ê'),
    ('Ã‹', 'Ë'),
    ('ÃŒ', 'Ì'),
    ('ÃŽ', 'Î'),
    ('Ã‘', 'Ñ'),
    ('Ã’', 'Ò'),
    ('Ã“', 'Ó'),
    ('Ã”', 'Ô'),
    ('Ã•', 'Õ'),
    ('Ã–', 'Ö'),
    ('Ã—', '×'),
    ('Ã˜', 'Ø'),
    ('Ã™', 'Ù'),
    ('Ãš', 'Ú'),
    ('Ã›', 'Û'),
    ('Ãœ', 'Ü'),
    ('Ãž', 'Þ'),
    ('ÃŸ', 'ß'),
    ('Ã ', 'à'),
    ('Ã¡', 'á'),
    ('Ã¢', 'â'),
    ('Ã£', 'ã'),
    ('Ã¤', 'ä'),
    ('Ã¥', 'å'),
    ('Ã¦', 'æ'),
    ('Ã§', 'ç'),
    ('Ã¨', 'è'),
    ('Ã©', 'é'),
    ('Ãª', 'ê'),
    ('Ã«', 'ë'),
    ('Ã¬', 'ì'),
    ('Ã­', 'í'),
    ('Ã®', 'î'),
    ('Ã¯', 'ï'),
    ('Ã°', 'ð'),
    ('Ã±', 'ñ'),
    ('Ã²', 'ò'),
    ('Ã³', 'ó'),
    ('Ã´', 'ô'),
    ('Ãµ', 'õ'),
    ('Ã¶', 'ö'),
    ('Ã·', '÷'),
    ('Ã¸', 'ø'),
    ('Ã¹', 'ù'),
    ('Ãº', 'ú'),
    ('Ã»', 'û'),
    ('Ã¼', 'ü'),
    ('Ã½', 'ý'),
    ('Ã¾', 'þ'),
    ('Ã¿', 'ÿ'),
    ] -%}
    {%- for broken, fixed in repairs %}
    select {{ loop.index }} as step, {{ string_literal(broken) }} as broken, {{ string_literal(fixed) }} as fixed
    {{- "\n    union all" if not loop.last }}
    {%- endfor %}
{%- endmacro %}
