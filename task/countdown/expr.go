package countdown

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Expr is an arithmetic expression over the problem's numbers: a leaf
// (Op == 0) holding Value, or Left Op Right.
type Expr struct {
	Op          byte // 0 for a number, else one of + - * /
	Value       int
	Left, Right *Expr
}

// Limits on answer text, so a hostile answer cannot make the parser recurse
// without bound or evaluate huge numbers.
const (
	maxExprLen   = 1000
	maxExprDepth = 64
	maxExprDigit = 12
)

// ErrInvalidAnswer wraps every reason an answer is rejected.
var ErrInvalidAnswer = errors.New("invalid answer")

// AnswerError says what is wrong with an answer expression and where.
type AnswerError struct {
	Pos    int // byte offset into the answer, or -1 when it is about the whole
	Reason string
}

func (e *AnswerError) Error() string {
	if e.Pos >= 0 {
		return fmt.Sprintf("%s at position %d", e.Reason, e.Pos+1)
	}
	return e.Reason
}

func (e *AnswerError) Unwrap() error { return ErrInvalidAnswer }

// ParseExpr parses an answer such as "26+(53/(31+22))". It accepts integers,
// + - * /, the typographic × ÷ − and parentheses, with the usual precedence.
// A trailing "= 27" is not part of the grammar.
func ParseExpr(s string) (*Expr, error) {
	if len(s) > maxExprLen {
		return nil, &AnswerError{Pos: -1, Reason: fmt.Sprintf("answer is longer than %d bytes", maxExprLen)}
	}
	p := exprParser{src: normaliseOperators(s)}
	p.skipSpace()
	if p.pos == len(p.src) {
		return nil, &AnswerError{Pos: -1, Reason: "empty answer"}
	}
	e, err := p.sum(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		if p.src[p.pos] == ')' {
			return nil, p.errf("unmatched ')'")
		}
		return nil, p.unexpected(" after a complete expression")
	}
	return e, nil
}

// normaliseOperators maps the typographic operators to ASCII, one byte each,
// so positions in errors stay meaningful for ASCII answers.
func normaliseOperators(s string) string {
	if !strings.ContainsAny(s, "×÷−") {
		return s
	}
	return strings.NewReplacer("×", "*", "÷", "/", "−", "-").Replace(s)
}

type exprParser struct {
	src string
	pos int
}

func (p *exprParser) errf(format string, args ...any) error {
	return &AnswerError{Pos: p.pos, Reason: fmt.Sprintf(format, args...)}
}

func (p *exprParser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *exprParser) peekOp(ops string) byte {
	p.skipSpace()
	if p.pos < len(p.src) && strings.IndexByte(ops, p.src[p.pos]) >= 0 {
		return p.src[p.pos]
	}
	return 0
}

// sum := product (("+"|"-") product)*
func (p *exprParser) sum(depth int) (*Expr, error) { return p.chain(depth, "+-", p.product) }

// product := atom (("*"|"/") atom)*
func (p *exprParser) product(depth int) (*Expr, error) { return p.chain(depth, "*/", p.atom) }

// chain parses operands joined by any of ops, left-associative.
func (p *exprParser) chain(depth int, ops string, operand func(int) (*Expr, error)) (*Expr, error) {
	left, err := operand(depth)
	if err != nil {
		return nil, err
	}
	for {
		op := p.peekOp(ops)
		if op == 0 {
			return left, nil
		}
		p.pos++
		right, err := operand(depth)
		if err != nil {
			return nil, err
		}
		left = &Expr{Op: op, Left: left, Right: right}
	}
}

// atom := number | "(" sum ")"
func (p *exprParser) atom(depth int) (*Expr, error) {
	p.skipSpace()
	if p.pos == len(p.src) {
		return nil, p.errf("expected a number or '(' but the answer ended")
	}
	c := p.src[p.pos]
	switch {
	case c == '(':
		if depth >= maxExprDepth {
			return nil, p.errf("parentheses nested deeper than %d", maxExprDepth)
		}
		open := p.pos
		p.pos++
		e, err := p.sum(depth + 1)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos == len(p.src) || p.src[p.pos] != ')' {
			return nil, &AnswerError{Pos: open, Reason: "'(' is never closed"}
		}
		p.pos++
		return e, nil
	case c >= '0' && c <= '9':
		start := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		if p.pos-start > maxExprDigit {
			return nil, &AnswerError{Pos: start, Reason: "number is too long"}
		}
		if p.pos < len(p.src) && p.src[p.pos] == '.' {
			return nil, p.errf("only whole numbers are allowed")
		}
		if r, _ := utf8.DecodeRuneInString(p.src[p.pos:]); wordRune(r) {
			return nil, p.notPlainAt(start)
		}
		v, _ := strconv.Atoi(p.src[start:p.pos]) // digits only, at most 12: cannot fail
		return &Expr{Value: v}, nil
	case c == '-' || c == '+':
		return nil, p.errf("a sign before a number is not allowed (no unary %c)", c)
	case c == ')':
		return nil, p.errf("expected a number but found ')'")
	case strings.IndexByte("*/", c) >= 0:
		return nil, p.errf("operator %q has no left operand", c)
	default:
		return nil, p.unexpected(": only numbers, + - * / and parentheses are allowed")
	}
}

// unexpected rejects the character at p.pos, which the grammar does not
// allow there, naming it whole rather than by its first byte. A digit of
// another script, a superscript or a circled number is named as a number
// that is not plain, so the answer reads as what is wrong with it.
func (p *exprParser) unexpected(suffix string) error {
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	if unicode.IsNumber(r) {
		return p.notPlainAt(p.pos)
	}
	return p.errf("unexpected %q%s", r, suffix)
}

// notPlainAt rejects the word that starts at start, such as "5x", "5³" or
// "٢٢", as a number that is not plain.
func (p *exprParser) notPlainAt(start int) error {
	end := start
	for end < len(p.src) {
		r, w := utf8.DecodeRuneInString(p.src[end:])
		if !wordRune(r) {
			break
		}
		end += w
	}
	return &AnswerError{Pos: start, Reason: notPlain(p.src[start:end]).Error()}
}

// Eval returns the exact rational value of e. Division by zero is an error.
func (e *Expr) Eval() (*big.Rat, error) {
	if e.Op == 0 {
		return new(big.Rat).SetInt64(int64(e.Value)), nil
	}
	l, err := e.Left.Eval()
	if err != nil {
		return nil, err
	}
	r, err := e.Right.Eval()
	if err != nil {
		return nil, err
	}
	switch e.Op {
	case '+':
		return l.Add(l, r), nil
	case '-':
		return l.Sub(l, r), nil
	case '*':
		return l.Mul(l, r), nil
	default:
		if r.Sign() == 0 {
			return nil, &AnswerError{Pos: -1, Reason: fmt.Sprintf("division by zero in %s", e)}
		}
		return l.Quo(l, r), nil
	}
}

// Leaves returns the numbers e uses, left to right.
func (e *Expr) Leaves() []int {
	if e.Op == 0 {
		return []int{e.Value}
	}
	return append(e.Left.Leaves(), e.Right.Leaves()...)
}

func prec(op byte) int {
	switch op {
	case '+', '-':
		return 1
	case '*', '/':
		return 2
	}
	return 3
}

// String prints e with the fewest parentheses that keep its meaning.
func (e *Expr) String() string {
	var b strings.Builder
	e.write(&b)
	return b.String()
}

func (e *Expr) write(b *strings.Builder) {
	if e.Op == 0 {
		b.WriteString(strconv.Itoa(e.Value))
		return
	}
	p := prec(e.Op)
	// The left operand needs parentheses only when it binds more loosely;
	// the right one also when it has equal precedence and the operator is
	// not associative with it (a-(b-c), a/(b*c), a-(b+c)).
	lp := prec(e.Left.Op) < p
	rp := prec(e.Right.Op) < p || (prec(e.Right.Op) == p && (e.Op == '-' || e.Op == '/'))
	writeSide(b, e.Left, lp)
	b.WriteByte(e.Op)
	writeSide(b, e.Right, rp)
}

func writeSide(b *strings.Builder, e *Expr, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	e.write(b)
	if paren {
		b.WriteByte(')')
	}
}

// canonical is a string equal for expressions that differ only by
// commutativity and associativity, such as 4*1*(9-3) and 1*(4*(9-3)): chains
// of + and - (and of * and /) are flattened into signed terms and sorted.
func (e *Expr) canonical() string {
	if e.Op == 0 {
		return strconv.Itoa(e.Value)
	}
	var terms []string
	var flatten func(x *Expr, inverse bool)
	additive := e.Op == '+' || e.Op == '-'
	flatten = func(x *Expr, inverse bool) {
		if additive && (x.Op == '+' || x.Op == '-') || !additive && (x.Op == '*' || x.Op == '/') {
			flatten(x.Left, inverse)
			flatten(x.Right, inverse != (x.Op == '-' || x.Op == '/'))
			return
		}
		sign := "+"
		if inverse {
			sign = "-"
		}
		terms = append(terms, sign+x.canonical())
	}
	flatten(e, false)
	slices.Sort(terms)
	kind := "*"
	if additive {
		kind = "+"
	}
	return kind + "(" + strings.Join(terms, " ") + ")"
}

// VerifyAnswer checks an answer expression against p: every input number used
// exactly once, only the four operations, and an exact rational value equal
// to the target. It returns nil for a correct answer and otherwise an error,
// wrapping ErrInvalidAnswer, that says what is wrong.
func VerifyAnswer(p Problem, answer string) error {
	e, err := ParseExpr(answer)
	if err != nil {
		return err
	}
	if err := checkNumbersUsed(p.Numbers, e.Leaves()); err != nil {
		return err
	}
	v, err := e.Eval()
	if err != nil {
		return err
	}
	if !v.IsInt() || v.Num().Cmp(big.NewInt(int64(p.Target))) != 0 {
		return &AnswerError{Pos: -1, Reason: fmt.Sprintf("%s equals %s, not the target %d", e, v.RatString(), p.Target)}
	}
	return nil
}

func checkNumbersUsed(inputs, used []int) error {
	left := make(map[int]int, len(inputs))
	for _, n := range inputs {
		left[n]++
	}
	for _, n := range used {
		c, ok := left[n]
		switch {
		case !ok:
			return &AnswerError{Pos: -1, Reason: fmt.Sprintf("%d is not one of the numbers %s", n, formatNums(inputs))}
		case c == 0:
			return &AnswerError{Pos: -1, Reason: fmt.Sprintf("%d is used more often than it is given in %s", n, formatNums(inputs))}
		}
		left[n] = c - 1
	}
	var missing []int
	for _, n := range inputs {
		if left[n] > 0 {
			missing = append(missing, n)
			left[n]--
		}
	}
	if len(missing) > 0 {
		return &AnswerError{Pos: -1, Reason: fmt.Sprintf("every number must be used once; unused: %s", formatNums(missing))}
	}
	return nil
}

// PathExpression turns a solution path (operations applied in order to the
// problem's numbers) into one expression, such as 26+53/(31+22).
func PathExpression(numbers []int, path []Op) (*Expr, error) {
	pool := make([]*Expr, len(numbers))
	vals := slices.Clone(numbers)
	for i, n := range numbers {
		pool[i] = &Expr{Value: n}
	}
	for step, op := range path {
		if err := checkOp(op); err != nil {
			return nil, fmt.Errorf("step %d (%s): %w", step+1, op, err)
		}
		ia := slices.Index(vals, op.A)
		if ia < 0 {
			return nil, fmt.Errorf("step %d (%s): %d is not available in %s", step+1, op, op.A, formatNums(vals))
		}
		a := pool[ia]
		vals, pool = slices.Delete(vals, ia, ia+1), slices.Delete(pool, ia, ia+1)
		ib := slices.Index(vals, op.B)
		if ib < 0 {
			return nil, fmt.Errorf("step %d (%s): %d is not available", step+1, op, op.B)
		}
		b := pool[ib]
		vals, pool = slices.Delete(vals, ib, ib+1), slices.Delete(pool, ib, ib+1)
		vals = append(vals, op.Result)
		pool = append(pool, &Expr{Op: op.Sym, Left: a, Right: b})
	}
	if len(pool) != 1 {
		return nil, fmt.Errorf("path leaves %d numbers %s, not one", len(vals), formatNums(vals))
	}
	return pool[0], nil
}
