"""nncgan view: the graph as a picture; the run report builds on it."""
