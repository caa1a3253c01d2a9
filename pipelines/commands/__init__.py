"""The commands of `neuron-calls`: one module per command, and what a person sees of them.

`pipelines/cli.py` parses the command line and hands each command to its module here;
`console.py` (progress, summary, the one-line error) and `display.py` (tables, CSV, JSON) are
the output every command shares.
"""
