-- Phones that answered at least once with disposition 'dnd' (do not disturb),
-- and how many calls (any status) were still made to them afterwards.
create or replace view {schema}.dnd_contacts as

with calls as (

    select * from {schema}.stg_calls

),

first_dnd as (

    select
        contact_phone,
        min(started_at) as first_dnd_at
    from calls
    where disposition = 'dnd'
    group by contact_phone

),

final as (

    select
        first_dnd.contact_phone,
        first_dnd.first_dnd_at,
        -- strictly later: the dnd call itself does not count
        count(*) filter (
            where calls.started_at > first_dnd.first_dnd_at
        ) as calls_after_dnd
    from first_dnd
    -- is not distinct from: a NULL phone still matches its own calls
    inner join calls
        on first_dnd.contact_phone is not distinct from calls.contact_phone
    group by first_dnd.contact_phone, first_dnd.first_dnd_at

)

select * from final
