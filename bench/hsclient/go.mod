module edgeproxy/bench/hsclient

go 1.19
