"""The shared vocabulary every other package speaks, with no I/O: intervals and UTC days
(`intervals`), trading sessions (`sessions`), the universe of venues and instruments
(`universe`), settings from the environment (`settings`), errors (`errors`), the shared
Dagster names (`names`), the gap classes and gap arithmetic (`gaps`) and the features'
parameters (`feature_params`). Nothing here imports another package of the project but `venues`
and `candle_frame`.
"""
