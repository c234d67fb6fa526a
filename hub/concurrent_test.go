package hub

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentRooms: members of two rooms send, drop and come back at
// once, beside the sweeper and the hub-wide cap on kept frames. Under
// -race this finds unguarded state and lock-order mistakes; after it,
// members that stayed got every frame of their room once and in order,
// and the hub holds nothing once all have left.
func TestConcurrentRooms(t *testing.T) {
	h, clk := testHub(t, Config{Rate: 1e9, Burst: 1 << 20, JoinBurst: 100})
	h.maxKeptBytes = 40 * (int64(len(body64("m 0 0"))) + keptOverhead)
	const perRoom, msgs = 4, 150
	rooms := []string{roomID(40), roomID(41)}
	var stayers []*client
	all := make([][]*client, len(rooms))
	sent := make([]int, len(rooms))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for ri, room := range rooms {
		var cs []*client
		var ws []frame
		for i := range perRoom {
			c := dial(t, h, fmt.Sprint("p", ri, i))
			w, _ := c.join(room, fmt.Sprint("m", i))
			cs, ws = append(cs, c), append(ws, w)
		}
		stayers = append(stayers, cs[0])
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range msgs {
					c.msgID(body64(fmt.Sprint("m ", i, " ", k)), k+1)
					if i == perRoom-1 && k == msgs/2 { // drops, then comes back
						c.s.End()
						mu.Lock()
						c = &client{t: t, h: h, conn: &pipeConn{}}
						c.s = h.Open(c.conn, fmt.Sprint("p", ri, i))
						mu.Unlock()
						c.s.Receive(fmt.Appendf(nil, `{"v":2,"type":"join","room":%q,"name":"m%d","resume":%q,"since":0}`, room, i, ws[i].str("resume")))
					}
				}
				mu.Lock()
				sent[ri] += msgs
				cs[i] = c
				mu.Unlock()
			}()
		}
		all[ri] = cs
	}
	done := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for {
			select {
			case <-done:
				return
			default:
				clk.advance(time.Millisecond)
				h.sweep(nil)
			}
		}
	}()
	wg.Wait()
	close(done)
	<-swept
	if k := h.kept.Load(); k > h.maxKeptBytes {
		t.Errorf("%d bytes kept, cap %d", k, h.maxKeptBytes)
	}
	for ri, c := range stayers {
		got := seqs(c.frames())
		// Member 0 gets every frame but its own, in order and once.
		if len(got) != sent[ri]-msgs {
			t.Errorf("room %d: member 0 got %d frames, want %d", ri, len(got), sent[ri]-msgs)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("room %d: seq %d after %d", ri, got[i], got[i-1])
			}
		}
	}
	for _, cs := range all {
		for _, c := range cs {
			c.leave()
		}
	}
	checkEmpty(t, h)
	for _, cs := range all {
		for _, c := range cs {
			c.frames()
		}
	}
}
