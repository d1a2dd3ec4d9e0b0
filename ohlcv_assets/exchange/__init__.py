"""The venues' REST APIs as candle sources: the ``CandleSource`` interface and the closed-candle
pagination every source shares (``source``), the ccxt and Polygon clients (``ccxt_source``,
``polygon_source``), the registry that builds a venue's source (``sources``), the retry discipline
(``retrying``) and the request budget shared by every process in the warehouse (``rate_budget``)."""
