"""What several test modules share: paths to the data, servers on loopback, peers that speak
other protocols, a terminal to run `rag` on, a real PostgreSQL server, and hosts made of
network namespaces."""
