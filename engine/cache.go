package engine

import (
	"container/list"
	"errors"
)

// blockTokens is the number of tokens one cache block holds: small enough
// that a forked thread's partly filled last block wastes little, large
// enough that attention's per-block overhead stays small. Sixteen keys are
// also one AVX-512 register of scores.
const blockTokens = 16

// node is a run of consecutive tokens of one or more sequences, with their
// keys and values in one block: a node of the prefix tree. Its tokens
// follow the first branch tokens of its parent, so a node can branch off
// the middle of another: forking a thread, or matching a prompt that shares
// part of a node, copies nothing.
type node struct {
	// id orders nodes (older first), so that sorting paths brings those
	// that share nodes together.
	id     uint64
	parent *node
	branch int // how many of the parent's tokens precede this node
	start  int // sequence position of tokens[0]
	// tokens are the node's tokens, at most blockTokens; a thread at the
	// node's end may append to it in place while no child branches off it.
	tokens []int32
	// filled counts the tokens whose keys and values are computed. Between
	// steps every token is filled; during one, tokens appended for the step
	// are pending until its forward pass writes them.
	filled int
	writer *thread // the thread that appended the pending tokens
	kv     kvBlock
	// children branch off this node; refs counts the live threads whose
	// sequence runs through it.
	children []*node
	refs     int
	// lru is the node's place in the list of evictable nodes: unreferenced
	// leaves, least recently used first.
	lru *list.Element
}

// kvBlock holds a node's keys and values (laid out as weights.blockValues
// says): in half precision, or, in an 8-bit cache, as integers q with a
// scale per layer, key or value, head and slot (weights.blockScales), the
// value being q·scale.
type kvBlock struct {
	half []uint16
	// index is the indexer's keys where the engine attends sparsely
	// (blockIndexKeys), in half precision either way.
	index []uint16
	// q is an 8-bit block's values; its keys are bytes offset by 128, as
	// tensor.ScoresQ8 reads them (u views the same memory).
	q     []int8
	u     []uint8
	scale []float32
}

// half is n of a half-precision block's values at off, to fetch into
// the caches: none for a nil node.
func (n *node) half(off, size int) []uint16 {
	if n == nil {
		return nil
	}
	return n.kv.half[off : off+size]
}

// q is half for an 8-bit block's values.
func (n *node) q(off, size int) []int8 {
	if n == nil {
		return nil
	}
	return n.kv.q[off : off+size]
}

// u is half for an 8-bit block's keys.
func (n *node) u(off, size int) []uint8 {
	if n == nil {
		return nil
	}
	return n.kv.u[off : off+size]
}

// errCacheFull means every block holds keys and values a live thread uses.
var errCacheFull = errors.New("KV cache full")

// errWait means a thread has caught up with another thread's pending
// tokens and should wait a step rather than compute what that thread is
// about to.
var errWait = errors.New("wait for the pending tokens")

// cache is the KV cache: a prefix tree of nodes over a budget of blocks.
// Only the engine's loop touches it.
type cache struct {
	blockValues int // values in one block
	blockScales int // scales in one block: 0 in half precision
	indexKeys   int // the indexer's key values in one block: 0 for dense attention
	maxBlocks   int
	blocks      int // blocks holding nodes
	free        []kvBlock
	mem         *arena // where blocks are taken from
	root        node
	nodes       uint64 // ids handed out
	evictable   list.List
	// touched are the nodes that have pending tokens this step.
	touched []*node
	// referenced counts the blocks of nodes with refs > 0.
	referenced int
}

// newCache is a cache of maxBlocks blocks of blockValues values each, in
// half precision, or in 8 bits with blockScales scales when that is not 0,
// and indexKeys of the indexer's keys in half precision.
func newCache(blockValues, blockScales, indexKeys, maxBlocks int) *cache {
	c := &cache{blockValues: blockValues, blockScales: blockScales, indexKeys: indexKeys, maxBlocks: maxBlocks}
	c.mem = newArena(c.indexAt() + 2*indexKeys)
	return c
}

// scaleBytes is the room a block gives its scales, ahead of its values:
// whole cache lines, so the values start on one.
func (c *cache) scaleBytes() int { return (c.blockScales*4 + 63) &^ 63 }

// indexAt is where a block's indexer keys start, on the cache line after
// its values.
func (c *cache) indexAt() int {
	valueBytes := 2 * c.blockValues
	if c.blockScales > 0 {
		valueBytes = c.blockValues
	}
	return (c.scaleBytes() + valueBytes + 63) &^ 63
}

// cursor is a thread's place in the tree: path[len-1] holds its last token
// at index off-1 (the root, when path is empty).
type cursor struct {
	path []*node
	off  int
}

func (c *cache) at(cur *cursor) *node {
	if len(cur.path) == 0 {
		return &c.root
	}
	return cur.path[len(cur.path)-1]
}

// advance moves th's cursor past token t: to where the tree already holds
// t right after the cursor, or to a slot appended for it. It returns the
// node and slot of t, and whether th must compute t's keys and values
// (fresh). It fails with errWait when th has caught up with tokens another
// thread is computing this step and t is not among them, and with
// errCacheFull when t needs a block and none can be freed.
func (c *cache) advance(th *thread, t int32) (n *node, slot int, fresh bool, err error) {
	cur := &th.cur
	n = c.at(cur)
	if cur.off < len(n.tokens) && n.tokens[cur.off] == t {
		cur.off++
		return n, cur.off - 1, false, nil
	}
	for _, ch := range n.children {
		if ch.branch == cur.off && ch.tokens[0] == t {
			c.acquire(ch)
			cur.path = append(cur.path, ch)
			cur.off = 1
			return ch, 0, false, nil
		}
	}
	if n.filled < len(n.tokens) && n.writer != th && cur.off == len(n.tokens) {
		return nil, 0, false, errWait
	}
	// Appending in place at the node's end is safe whoever else holds it:
	// they read only the slots before their own place. A thread behind,
	// whose token differs, branches off instead.
	if n != &c.root && cur.off == len(n.tokens) && len(n.tokens) < blockTokens && len(n.children) == 0 {
		n.tokens = append(n.tokens, t)
		c.pending(n, th)
		cur.off++
		return n, cur.off - 1, true, nil
	}
	ch, err := c.newChild(n, cur.off, t)
	if err != nil {
		return nil, 0, false, err
	}
	c.pending(ch, th)
	c.acquire(ch)
	cur.path = append(cur.path, ch)
	cur.off = 1
	return ch, 0, true, nil
}

func (c *cache) pending(n *node, th *thread) {
	if n.writer == nil {
		c.touched = append(c.touched, n)
	}
	n.writer = th
}

// stepDone marks every pending token filled, once the forward pass has
// written them.
func (c *cache) stepDone() {
	for _, n := range c.touched {
		n.filled = len(n.tokens)
		n.writer = nil
	}
	c.touched = c.touched[:0]
}

func (c *cache) newChild(parent *node, branch int, t int32) (*node, error) {
	kv, err := c.block()
	if err != nil {
		return nil, err
	}
	c.nodes++
	n := &node{id: c.nodes, parent: parent, branch: branch, start: parent.start + branch, kv: kv,
		tokens: append(make([]int32, 0, blockTokens), t)}
	if parent.lru != nil {
		c.evictable.Remove(parent.lru)
		parent.lru = nil
	}
	parent.children = append(parent.children, n)
	c.blocks++
	return n, nil
}

// block returns a free block, allocating one under the budget or evicting
// the least recently used unreferenced leaf.
func (c *cache) block() (kvBlock, error) {
	if k := len(c.free); k > 0 {
		b := c.free[k-1]
		c.free = c.free[:k-1]
		return b, nil
	}
	if c.blocks < c.maxBlocks {
		m := c.mem.take()
		var b kvBlock
		if c.indexKeys > 0 {
			b.index = halves(m[c.indexAt():], c.indexKeys)
		}
		if c.blockScales > 0 {
			u := m[c.scaleBytes():][:c.blockValues:c.blockValues]
			b.scale, b.q, b.u = floats(m, c.blockScales), int8s(u, c.blockValues), u
			return b, nil
		}
		b.half = halves(m, c.blockValues)
		return b, nil
	}
	e := c.evictable.Front()
	if e == nil {
		return kvBlock{}, errCacheFull
	}
	c.evict(e.Value.(*node))
	b := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	return b, nil
}

// evict removes an unreferenced leaf and frees its block. Its parent may
// become a leaf in turn: it goes first in line, being no more recently
// used than its child.
func (c *cache) evict(n *node) {
	c.evictable.Remove(n.lru)
	n.lru = nil
	p := n.parent
	for i, ch := range p.children {
		if ch == n {
			p.children = append(p.children[:i], p.children[i+1:]...)
			break
		}
	}
	c.free = append(c.free, n.kv)
	n.kv, n.parent = kvBlock{}, nil
	c.blocks--
	if p != &c.root && p.refs == 0 && len(p.children) == 0 {
		p.lru = c.evictable.PushFront(p)
	}
}

func (c *cache) acquire(n *node) {
	if n.refs == 0 {
		c.referenced++
	}
	n.refs++
	if n.lru != nil {
		c.evictable.Remove(n.lru)
		n.lru = nil
	}
}

// release drops a thread's hold on its path; unreferenced leaves become
// evictable, most recently used last.
func (c *cache) release(cur *cursor) {
	for i := len(cur.path) - 1; i >= 0; i-- {
		n := cur.path[i]
		n.refs--
		if n.refs == 0 {
			c.referenced--
			if len(n.children) == 0 {
				n.lru = c.evictable.PushBack(n)
			}
		}
	}
	cur.path, cur.off = nil, 0
}

// dropUnreferenced evicts every node no live thread uses. When that leaves
// no block in use, the memory goes back to the system.
func (c *cache) dropUnreferenced() {
	for e := c.evictable.Front(); e != nil; e = c.evictable.Front() {
		c.evict(e.Value.(*node))
	}
	c.free = nil
	if c.blocks == 0 {
		c.mem.release()
	}
}

// close gives the cache's memory back; the nodes left keep their tokens
// but no keys or values. Nothing may step the cache after.
func (c *cache) close() {
	var clearKV func(n *node)
	clearKV = func(n *node) {
		n.kv = kvBlock{}
		for _, ch := range n.children {
			clearKV(ch)
		}
	}
	clearKV(&c.root)
	c.free = nil
	c.mem.release()
}
