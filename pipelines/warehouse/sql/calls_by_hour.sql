-- Final calls per ISO weekday (1 = Monday ... 7 = Sunday) x hour (0-23) of
-- started_at, both on the wall clock of the business time zone (the TIMEZONE
-- setting, default UTC): when calls connect. Only cells with calls are rows.
create or replace view {schema}.calls_by_hour as

with calls as (

    select * from {schema}.stg_calls

),

final_calls as (

    select
        -- started_at is a timestamptz: at time zone gives the business zone's
        -- wall clock, whatever the session's TimeZone
        extract(isodow from started_at at time zone {timezone})::integer as weekday,
        extract(hour from started_at at time zone {timezone})::integer as hour,
        is_connected
    from calls
    where is_final

),

counted as (

    select
        weekday,
        hour,
        count(*) as calls,
        count(*) filter (where is_connected) as connected
    from final_calls
    group by weekday, hour

),

final as (

    select
        weekday,
        hour,
        calls,
        connected,
        connected::double / nullif(calls, 0) as connect_rate
    from counted

)

select * from final
