"""One run against one warehouse: locks, the dlt pipeline, segments and checkpoints, the exit code.

`sync.py` runs the source into the warehouse; `staged.py` is the one staged write (stage ->
write -> record -> publish) every writer uses; `outcomes.py` maps how a run ended to its exit
code and one line; `memory.py` gives a long run's memory back to the system.
"""
