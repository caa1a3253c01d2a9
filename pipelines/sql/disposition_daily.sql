-- Final calls per UTC day x campaign x language x disposition.
create or replace view {schema}.disposition_daily as

with calls as (

    select * from {schema}.stg_calls

),

final_calls_by_day as (

    select
        -- started_at is a timestamptz: a plain ::date would use the session
        -- TimeZone, so it is first turned into a UTC wall-clock timestamp.
        (started_at at time zone 'UTC')::date as day,
        campaign_id,
        language,
        disposition
    from calls
    where is_final

),

final as (

    select
        day,
        campaign_id,
        language,
        disposition,
        count(*) as calls
    from final_calls_by_day
    group by day, campaign_id, language, disposition

)

select * from final
