-- Staging for the transcripts table: one row per call whose transcript is
-- complete, renamed and typed.
create or replace view {schema}.stg_transcripts as

with source as (

    select * from {schema}.transcripts

),

renamed as (

    select
        call_id,
        job_id as transcript_job_id,
        language,
        duration_seconds::bigint as duration_seconds,
        summary,
        sentiment_overall::double as sentiment_overall
    from source

)

select * from renamed
