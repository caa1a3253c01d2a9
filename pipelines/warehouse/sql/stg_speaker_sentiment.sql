-- Staging for the speaker_sentiment table: one row per call and speaker
-- ('agent' or 'customer'), renamed and typed.
create or replace view {schema}.stg_speaker_sentiment as

with source as (

    select * from {schema}.speaker_sentiment

),

renamed as (

    select
        call_id,
        speaker,
        sentiment::double as sentiment
    from source

)

select * from renamed
