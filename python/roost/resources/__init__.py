"""One module per API noun. Each talks to the wire only through :class:`roost.client.RoostClient`."""
