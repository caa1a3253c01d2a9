-- Contacts that answered at least once with disposition 'dnd' (do not disturb),
-- and how many calls (any status) were still made to them afterwards. A call
-- without a phone is a contact of its own (stg_calls.contact_key): its row has
-- a NULL contact_phone and counts no one else's calls.
create or replace view {schema}.dnd_contacts as

with calls as (

    select * from {schema}.stg_calls

),

first_dnd as (

    select
        contact_key,
        -- one phone per contact_key (NULL for a call without a phone)
        min(contact_phone) as contact_phone,
        min(started_at) as first_dnd_at
    from calls
    where disposition = 'dnd'
    group by contact_key

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
    inner join calls
        on first_dnd.contact_key = calls.contact_key
    group by first_dnd.contact_key, first_dnd.contact_phone, first_dnd.first_dnd_at

)

select * from final
