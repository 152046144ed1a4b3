"""fleetmon discovery: ZooKeeper registration and sharded Prometheus file_sd targets."""
