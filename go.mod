module github.com/onionchat/onionchat

go 1.26

require (
	github.com/gorilla/websocket v1.5.3
	github.com/pelletier/go-toml/v2 v2.4.3
	go.uber.org/goleak v1.3.0
)
