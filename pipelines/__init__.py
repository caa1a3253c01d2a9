"""neuron-calls: the Neuron Calls API synced into a warehouse with dlt.

The map, from the API to the person at the terminal:
    neuron/      the dlt source: settings in, rows and state out (neuron/api/: the HTTP
                 client, its errors and rate limiter); knows no warehouse
    runner/      one run against one warehouse: locks, segments, the staged write, exit codes
    warehouse/   the warehouse side: targets and locks, the DuckDB snapshot, reads, views and
                 their sql/, the privacy records
    commands/    `neuron-calls`'s commands, one module each, and what a person sees of them
    report/      the HTML disposition report, read from the views
    sandbox/     the API emulator the demo and the tests sync from
    cli.py       the entry: process settings, signals, the parser, the dispatch to commands/
    dagster_defs.py  Dagster assets, schedule and audit check over the runner
"""
