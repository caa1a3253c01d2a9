-- Final calls per UTC day x campaign x language x disposition.
-- started_at is a timestamptz: a plain ::date would use the session TimeZone,
-- so it is first converted to a UTC wall-clock timestamp.
create or replace view {schema}.disposition_daily as

with final_calls as (

    select * from {schema}.stg_calls
    where is_final

),

final as (

    select
        (started_at at time zone 'UTC')::date as day,
        campaign_id,
        language,
        disposition,
        count(*) as calls
    from final_calls
    group by 1, 2, 3, 4

)

select * from final
