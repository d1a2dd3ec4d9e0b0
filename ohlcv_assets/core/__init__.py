"""The shared vocabulary every other package speaks, with no I/O: intervals and UTC days
(`intervals`), trading sessions (`sessions`), the universe of venues and instruments
(`universe`), settings from the environment (`settings`), errors (`errors`), the shared
Dagster names (`names`), the candle frame's columns (`candle_frame`) and the gap classes
and gap arithmetic (`gaps`). Nothing here imports another package of the project but `venues`.
"""
