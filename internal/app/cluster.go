package app

import (
	"log/slog"

	"github.com/onionchat/onionchat/hub"
	"github.com/onionchat/onionchat/internal/cluster"
)

// linkCluster starts this instance's links to the others ([cluster]) and
// makes them the hub's Cluster; attach hands the hub to the links once it
// exists, and closing them after the hub has stopped tells the others
// this instance has gone. With the section off, both do nothing.
func linkCluster(s *settings, log *slog.Logger) (attach func(*hub.Hub) error, close func(), err error) {
	if s.cluster == nil {
		return func(*hub.Hub) error { return nil }, func() {}, nil
	}
	n, err := cluster.Start(*s.cluster, log)
	if err != nil {
		return nil, nil, err
	}
	s.hub.Cluster, s.hub.Instance = n, n.ID()
	return n.Attach, n.Close, nil
}
