-- Staging: one row per call, named columns only, plus the two flags every report uses.
--   final:     the call has ended, i.e. status is 'completed' or 'failed'
--              ('in_progress' and any status the vendor may add are not final).
--   connected: final and duration_seconds > 0 (someone picked up and talked).
create or replace view {schema}.stg_calls as

with source as (

    select * from {schema}.calls

),

renamed as (

    select
        id as call_id,
        campaign_id,
        contact_phone,
        contact_name,
        status,
        disposition,
        duration_seconds,
        language,
        started_at,
        ended_at,
        transcript_job_id,
        has_recording,
        coalesce(status in ('completed', 'failed'), false) as is_final,
        coalesce(
            status in ('completed', 'failed') and duration_seconds > 0, false
        ) as is_connected
    from source

)

select * from renamed
