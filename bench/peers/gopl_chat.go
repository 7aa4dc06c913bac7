// bench/peers/gopl_chat.go: the bench's Go peer, a chat room in the shape of
// the Go book's chapter 8 server (Donovan & Kernighan, "The Go Programming
// Language", 8.10), written anew: one broadcaster goroutine owns the set of
// clients and is fed by three channels (entering, leaving, messages); each
// connection has a reader goroutine (bufio.Scanner) and a writer goroutine
// ranging over its own unbuffered outgoing channel. A client that stops
// reading therefore stops its writer, then the broadcaster, then the room.
// Go sets TCP_NODELAY on every TCP connection by default.
//
//	go build -o gopl_chat bench/peers/gopl_chat.go && ./gopl_chat [-port N]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
)

// outgoing is one client's channel of lines to write, as the broadcaster sees it.
type outgoing chan<- string

// message is a line for the room and who sent it.
type message struct {
	from outgoing
	text string
}

var (
	entering = make(chan outgoing)
	leaving  = make(chan outgoing)
	messages = make(chan message)
)

// broadcaster owns the client set; nothing else touches it.
func broadcaster() {
	clients := make(map[outgoing]bool)
	for {
		select {
		case msg := <-messages:
			for cli := range clients {
				// The one difference from the book, which sends every line to
				// every client, its sender too: every relay in this bench
				// sends a line to every *other* client, so the sender is skipped.
				if cli != msg.from {
					cli <- msg.text
				}
			}
		case cli := <-entering:
			clients[cli] = true
		case cli := <-leaving:
			delete(clients, cli)
			close(cli)
		}
	}
}

// handleConn reads one client's lines and hands them to the broadcaster.
func handleConn(conn net.Conn) {
	ch := make(chan string) // unbuffered, as in the book
	go clientWriter(conn, ch)
	who := conn.RemoteAddr().String()
	ch <- "You are " + who
	messages <- message{ch, who + " has arrived"}
	entering <- ch
	input := bufio.NewScanner(conn)
	for input.Scan() {
		messages <- message{ch, who + ": " + input.Text()}
	}
	leaving <- ch
	messages <- message{nil, who + " has left"}
	conn.Close()
}

// clientWriter writes every line sent on ch; write errors are ignored, as in the book.
func clientWriter(conn net.Conn, ch <-chan string) {
	for msg := range ch {
		fmt.Fprintln(conn, msg)
	}
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	flag.Parse()
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	go broadcaster()
	for {
		conn, err := listener.Accept()
		if err != nil {
			log.Print(err)
			continue
		}
		go handleConn(conn)
	}
}
