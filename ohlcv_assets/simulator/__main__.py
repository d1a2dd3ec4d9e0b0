"""`python -m ohlcv_assets.simulator --port 8765 [--config sim.yaml]`."""

from ohlcv_assets.simulator.server import main

main()
