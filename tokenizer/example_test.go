package tokenizer_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"

	"github.com/braid-dev/braid/tokenizer"
)

func Example() {
	docs := []string{strings.Repeat("the cat sat on the mat. ", 100)}
	tk, err := tokenizer.Train(context.Background(), slices.Values(docs), 300, []string{"<|endoftext|>"})
	if err != nil {
		log.Fatal(err)
	}
	ids := tk.Encode("the cat sat<|endoftext|>")
	for _, id := range ids {
		fmt.Printf("%d %q\n", id, tk.Token(id))
	}
	fmt.Println(tk.Decode(ids))
	// Output:
	// 258 "the"
	// 264 "Ġcat"
	// 267 "Ġsat"
	// 268 "<|endoftext|>"
	// the cat sat<|endoftext|>
}

func ExampleTokenizer_EncodeOrdinary() {
	tk, err := tokenizer.Load("testdata/merge_order.json")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tk.Encode("<|endoftext|>"))
	fmt.Println(len(tk.EncodeOrdinary("<|endoftext|>")) > 1)
	// Output:
	// [262]
	// true
}
