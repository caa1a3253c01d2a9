-- Final calls per day x campaign x language x disposition; the day is the date
-- of started_at in the business time zone (the TIMEZONE setting, default UTC).
create or replace view {schema}.disposition_daily as

with calls as (

    select * from {schema}.stg_calls

),

final_calls_by_day as (

    select
        -- started_at is a timestamptz: a plain ::date would use the session
        -- TimeZone, so it is first turned into the business zone's wall clock.
        (started_at at time zone {timezone})::date as day,
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
