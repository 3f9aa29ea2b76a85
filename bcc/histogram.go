package bcc

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
)

// Histogram tables (BPF_HISTOGRAM) printed as bcc Python prints them.
//
// A log2 histogram's key is the slot (bpf_log2l(v): slot i counts values
// from 2^(i-1) to 2^i-1, slot 1 counts 0 and 1); a linear histogram's key is
// the value itself. A histogram keyed by a struct has one section per value
// of the struct's first field (bcc's "bucket": a disk name, a pid, flags),
// the slot being the next field: struct { char disk[32]; u64 slot; }.

// Slots bcc Python allocates per section: a log2 histogram covers any
// 64-bit value, a linear one the values 0 to 1024.
const (
	Log2HistSlots   = 65
	LinearHistSlots = 1025
	histStarsMax    = 40
)

// HistOptions are bcc Python's keyword arguments of print_log2_hist and
// print_linear_hist. The zero value prints as bcc does by default.
type HistOptions struct {
	// SectionHeader names a section's key in the line that opens each
	// section ("Bucket ptr" when empty, as bcc).
	SectionHeader string
	// SectionPrint formats a section's key (bcc's section_print_fn). By
	// default keys print as Python's repr: integers in decimal, char arrays
	// as b'...'.
	SectionPrint func(section any) string
	// BucketFn maps a section key to the section it is counted in (bcc's
	// bucket_fn); it must return a comparable value. As in bcc, when two
	// keys map to one section the slot written last wins.
	BucketFn func(section any) any
	// BucketSort orders the sections (bcc's bucket_sort_fn); by default
	// they come in the order the table's iteration first meets them, as
	// in bcc.
	BucketSort func(sections []any) []any
	// StripLeadingZero omits the empty slots before the first counted one
	// (bcc's strip_leading_zero).
	StripLeadingZero bool
	// KeyDecode splits a raw key into section and slot, for key layouts
	// the table's key description does not give. Without it, scalar keys
	// are slots and struct keys are read from the description.
	KeyDecode func(key []byte) (section any, slot uint64, err error)
}

// CharArray is a section key read from a char array field: its bytes up to
// the first NUL (what bcc Python's ctypes gives, printed as b'...').
type CharArray string

// Bucket is one row of a histogram: Count values from Low to High.
type Bucket struct {
	Low, High, Count uint64
}

// HistSection is one section of a histogram: Section is the key's first
// field (after HistOptions.BucketFn), or nil for a table keyed by the slot
// alone.
type HistSection struct {
	Section any
	Buckets []Bucket
}

// PrintLog2Hist writes the table as a log2 histogram exactly as bcc
// Python's print_log2_hist(val_type) prints it: a header naming valType,
// one row per power of two up to the highest counted slot, and stars
// scaled to the largest count. Sections (struct keys) each start with an
// empty line and "<SectionHeader> = <key>". At most one HistOptions.
func (t *Table) PrintLog2Hist(w io.Writer, valType string, opts ...HistOptions) error {
	return t.printHist(w, "PrintLog2Hist", Log2HistSlots, valType, opts, writeLog2Hist)
}

// PrintLinearHist writes the table as a linear histogram exactly as bcc
// Python's print_linear_hist(val_type) prints it: one row per value from 0
// to the highest counted one. Keys must be below LinearHistSlots.
func (t *Table) PrintLinearHist(w io.Writer, valType string, opts ...HistOptions) error {
	return t.printHist(w, "PrintLinearHist", LinearHistSlots, valType, opts, writeLinearHist)
}

// printHist collects the table's sections and writes each, with its section
// line when the keys have sections, through write (writeLog2Hist or
// writeLinearHist).
func (t *Table) printHist(w io.Writer, what string, slots int, valType string, opts []HistOptions,
	write func(b *strings.Builder, vals []uint64, valType string, stripLeadingZero bool)) error {
	secs, keyed, o, err := t.histCollect(what, slots, opts)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, s := range secs {
		if keyed {
			writeSectionLine(&b, o, s.section)
		}
		write(&b, s.vals, valType, o.StripLeadingZero)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// Log2Hist reads the table as log2 histograms, one per section, with the
// rows PrintLog2Hist would print (slot 1 as 0-1, then 2-3, 4-7, ... up to
// the highest counted slot), for programs that render them themselves.
func (t *Table) Log2Hist(opts ...HistOptions) ([]HistSection, error) {
	secs, _, o, err := t.histCollect("Log2Hist", Log2HistSlots, opts)
	if err != nil {
		return nil, err
	}
	out := make([]HistSection, 0, len(secs))
	for _, s := range secs {
		hs := HistSection{Section: s.section}
		strip := o.StripLeadingZero
		for i := 1; i <= maxIndex(s.vals); i++ {
			if strip && s.vals[i] == 0 {
				continue
			}
			strip = false
			lo, hi := log2Bounds(i)
			hs.Buckets = append(hs.Buckets, Bucket{Low: lo, High: hi, Count: s.vals[i]})
		}
		out = append(out, hs)
	}
	return out, nil
}

// LinearHist reads the table as linear histograms, one per section, with
// the rows PrintLinearHist would print (one per value, Low == High).
func (t *Table) LinearHist(opts ...HistOptions) ([]HistSection, error) {
	secs, _, o, err := t.histCollect("LinearHist", LinearHistSlots, opts)
	if err != nil {
		return nil, err
	}
	out := make([]HistSection, 0, len(secs))
	for _, s := range secs {
		hs := HistSection{Section: s.section}
		strip := o.StripLeadingZero
		for i := 0; i <= maxIndex(s.vals); i++ {
			if strip && s.vals[i] == 0 {
				continue
			}
			strip = false
			hs.Buckets = append(hs.Buckets, Bucket{Low: uint64(i), High: uint64(i), Count: s.vals[i]})
		}
		out = append(out, hs)
	}
	return out, nil
}

type histVals struct {
	section any
	vals    []uint64
}

// histCollect reads every entry of the table into per-section slot arrays
// of nslots, in the order bcc Python builds them.
func (t *Table) histCollect(op string, nslots int, opts []HistOptions) ([]histVals, bool, HistOptions, error) {
	var o HistOptions
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		return nil, false, o, fmt.Errorf("bcc: %s: at most one HistOptions, got %d", op, len(opts))
	}
	if o.SectionHeader == "" {
		o.SectionHeader = "Bucket ptr"
	}
	if t == nil {
		return nil, false, o, fmt.Errorf("bcc: %s: nil table: %w", op, ErrNotFound)
	}
	if t.err != nil {
		return nil, false, o, t.err
	}
	decode, keyed, err := t.histKeyDecoder(op, o.KeyDecode)
	if err != nil {
		return nil, false, o, err
	}
	leaf, err := t.histLeafReader(op)
	if err != nil {
		return nil, false, o, err
	}
	var secs []histVals
	index := map[any]int{}
	it := t.Iter()
	for it.Next() {
		section, slot, err := decode(it.Key())
		if err != nil {
			return nil, false, o, fmt.Errorf("bcc: %s %s: key %x: %w", op, t.name, it.Key(), err)
		}
		if slot >= uint64(nslots) {
			return nil, false, o, fmt.Errorf("bcc: %s %s: slot %d exceeds the maximum of %d", op, t.name, int64(slot), nslots-1)
		}
		if keyed && o.BucketFn != nil {
			section = o.BucketFn(section)
		}
		if section != nil && !reflect.TypeOf(section).Comparable() {
			return nil, false, o, fmt.Errorf("bcc: %s %s: section key of type %T is not comparable", op, t.name, section)
		}
		i, ok := index[section]
		if !ok {
			i = len(secs)
			index[section] = i
			secs = append(secs, histVals{section: section, vals: make([]uint64, nslots)})
		}
		secs[i].vals[slot] = leaf(it.Leaf())
	}
	if err := it.Err(); err != nil {
		return nil, false, o, err
	}
	if !keyed {
		if len(secs) == 0 {
			secs = []histVals{{vals: make([]uint64, nslots)}}
		}
		return secs, false, o, nil
	}
	if o.BucketSort != nil {
		keys := make([]any, len(secs))
		for i, s := range secs {
			keys[i] = s.section
		}
		keys = o.BucketSort(keys)
		sorted := make([]histVals, 0, len(keys))
		for _, k := range keys {
			i, ok := index[k]
			if !ok {
				return nil, false, o, fmt.Errorf("bcc: %s %s: BucketSort returned %v, which is not a section: %w", op, t.name, k, ErrNotFound)
			}
			sorted = append(sorted, secs[i])
		}
		secs = sorted
	}
	return secs, true, o, nil
}

// histLeafReader returns a function reading a count from a leaf (summed
// over CPUs for per-CPU tables).
func (t *Table) histLeafReader(op string) (func([]byte) uint64, error) {
	n := t.leafSize
	if n != 1 && n != 2 && n != 4 && n != 8 {
		return nil, fmt.Errorf("bcc: %s %s: values (%s) are %d bytes, not an integer count", op, t.name, t.leafDesc, n)
	}
	return func(b []byte) uint64 {
		var sum uint64
		for c := 0; c < t.ncpu; c++ {
			sum += readUint(b[c*t.stride:], n)
		}
		return sum
	}, nil
}

func readUint(b []byte, n int) uint64 {
	o := GetHostByteOrder()
	switch n {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(o.Uint16(b))
	case 4:
		return uint64(o.Uint32(b))
	}
	return o.Uint64(b)
}

// cInt describes an integer C type of a key description.
type cInt struct {
	size   int
	signed bool
}

var cInts = map[string]cInt{
	"char": {1, true}, "signed char": {1, true}, "unsigned char": {1, false}, "_Bool": {1, false}, "bool": {1, false},
	"short": {2, true}, "unsigned short": {2, false},
	"int": {4, true}, "unsigned int": {4, false},
	"long": {8, true}, "unsigned long": {8, false},
	"long long": {8, true}, "unsigned long long": {8, false},
}

func cIntOf(typ string) (cInt, bool) {
	if strings.HasPrefix(typ, "enum ") {
		return cInt{4, false}, true
	}
	c, ok := cInts[typ]
	return c, ok
}

func (c cInt) read(b []byte) any {
	v := readUint(b, c.size)
	if !c.signed {
		return v
	}
	shift := 64 - 8*c.size
	return int64(v<<shift) >> shift
}

// descField is one field of a struct key description with its offset.
type descField struct {
	name   string
	typ    any // string, or a nested description
	dims   []int
	off    int
	size   int
	isBits bool
}

// histKeyDecoder returns how to split the table's keys into section and
// slot, and whether keys have sections (struct keys).
func (t *Table) histKeyDecoder(op string, custom func([]byte) (any, uint64, error)) (func([]byte) (any, uint64, error), bool, error) {
	if custom != nil {
		return custom, true, nil
	}
	var desc any
	if err := json.Unmarshal([]byte(t.keyDesc), &desc); err != nil {
		return nil, false, fmt.Errorf("bcc: %s %s: cannot read the key description %q (use HistOptions.KeyDecode): %v", op, t.name, t.keyDesc, err)
	}
	if typ, ok := desc.(string); ok {
		c, ok := cIntOf(typ)
		if !ok || c.size != t.keySize {
			return nil, false, fmt.Errorf("bcc: %s %s: keys of type %s are not slots (use HistOptions.KeyDecode): %w", op, t.name, typ, ErrNotSupported)
		}
		return func(k []byte) (any, uint64, error) {
			switch v := c.read(k).(type) {
			case int64:
				if v < 0 {
					return nil, 0, fmt.Errorf("negative slot %d", v)
				}
				return nil, uint64(v), nil
			case uint64:
				return nil, v, nil
			}
			panic("unreachable")
		}, false, nil
	}
	fields, _, _, err := structFields(desc)
	if err != nil {
		return nil, false, fmt.Errorf("bcc: %s %s: key description %s (use HistOptions.KeyDecode): %w", op, t.name, t.keyDesc, err)
	}
	// bcc: the first field is the section, the second the slot (skipping
	// the padding the layout may put between them).
	var sf, lf *descField
	for i := range fields {
		f := &fields[i]
		if strings.HasPrefix(f.name, "__pad_") {
			continue
		}
		if sf == nil {
			sf = f
		} else {
			lf = f
			break
		}
	}
	if sf == nil || lf == nil {
		return nil, false, fmt.Errorf("bcc: %s %s: key %s needs a section field and a slot field: %w", op, t.name, t.keyDesc, ErrNotSupported)
	}
	section, err := fieldReader(sf)
	if err != nil {
		return nil, false, fmt.Errorf("bcc: %s %s: section field %s: %w", op, t.name, sf.name, err)
	}
	slotType, _ := lf.typ.(string)
	sc, ok := cIntOf(slotType)
	if !ok || len(lf.dims) > 0 || lf.isBits {
		return nil, false, fmt.Errorf("bcc: %s %s: slot field %s is not an integer (%v): %w", op, t.name, lf.name, lf.typ, ErrNotSupported)
	}
	if sf.off+sf.size > t.keySize || lf.off+lf.size > t.keySize {
		return nil, false, fmt.Errorf("bcc: %s %s: key description %s does not fit %d-byte keys: %w", op, t.name, t.keyDesc, t.keySize, ErrNotSupported)
	}
	return func(k []byte) (any, uint64, error) {
		var slot uint64
		switch v := sc.read(k[lf.off:]).(type) {
		case int64:
			if v < 0 {
				return nil, 0, fmt.Errorf("negative slot %d", v)
			}
			slot = uint64(v)
		case uint64:
			slot = v
		}
		return section(k[sf.off : sf.off+sf.size]), slot, nil
	}, true, nil
}

// fieldReader returns how to read a section field: integers as int64 or
// uint64, char arrays as CharArray.
func fieldReader(f *descField) (func([]byte) any, error) {
	typ, _ := f.typ.(string)
	if f.isBits {
		return nil, fmt.Errorf("bitfields are not supported: %w", ErrNotSupported)
	}
	if len(f.dims) == 1 && (typ == "char" || typ == "signed char" || typ == "unsigned char") {
		return func(b []byte) any {
			if i := strings.IndexByte(string(b), 0); i >= 0 {
				b = b[:i]
			}
			return CharArray(b)
		}, nil
	}
	if c, ok := cIntOf(typ); ok && len(f.dims) == 0 {
		return func(b []byte) any { return c.read(b) }, nil
	}
	return nil, fmt.Errorf("type %v%v is neither an integer nor a char array: %w", f.typ, f.dims, ErrNotSupported)
}

// structFields lays out a struct description ["name", [fields...],
// "struct"|"struct_packed"], returning its fields, size and alignment.
func structFields(desc any) ([]descField, int, int, error) {
	d, ok := desc.([]any)
	if !ok || len(d) < 2 {
		return nil, 0, 0, fmt.Errorf("not a struct description: %w", ErrNotSupported)
	}
	kind := "struct"
	if len(d) >= 3 {
		kind, _ = d[len(d)-1].(string)
	}
	if kind != "struct" && kind != "struct_packed" {
		return nil, 0, 0, fmt.Errorf("%q keys are not supported: %w", kind, ErrNotSupported)
	}
	list, ok := d[1].([]any)
	if !ok {
		return nil, 0, 0, fmt.Errorf("no field list: %w", ErrNotSupported)
	}
	packed := kind == "struct_packed"
	var fields []descField
	off, align := 0, 1
	for _, e := range list {
		fe, ok := e.([]any)
		if !ok || len(fe) < 2 {
			return nil, 0, 0, fmt.Errorf("malformed field %v: %w", e, ErrNotSupported)
		}
		f := descField{typ: fe[1]}
		f.name, _ = fe[0].(string)
		var esize, ealign int
		if s, ok := fe[1].(string); ok {
			c, ok := cIntOf(s)
			switch {
			case ok:
				esize, ealign = c.size, c.size
			case strings.HasSuffix(s, "*"):
				esize, ealign = 8, 8
			default:
				return nil, 0, 0, fmt.Errorf("field %s: unknown type %q: %w", f.name, s, ErrNotSupported)
			}
		} else {
			_, sz, al, err := structFields(fe[1])
			if err != nil {
				return nil, 0, 0, fmt.Errorf("field %s: %w", f.name, err)
			}
			esize, ealign = sz, al
		}
		n := 1
		if len(fe) >= 3 {
			switch x := fe[2].(type) {
			case []any:
				for _, dv := range x {
					dn, ok := dv.(float64)
					if !ok || dn < 0 || dn > 1<<20 {
						return nil, 0, 0, fmt.Errorf("field %s: bad dimension %v: %w", f.name, dv, ErrNotSupported)
					}
					f.dims = append(f.dims, int(dn))
					n *= int(dn)
				}
			case float64:
				f.isBits = true
			}
		}
		if f.isBits {
			return nil, 0, 0, fmt.Errorf("field %s: bitfields are not supported: %w", f.name, ErrNotSupported)
		}
		if !packed {
			off = (off + ealign - 1) / ealign * ealign
			align = max(align, ealign)
		}
		f.off, f.size = off, esize*n
		off += f.size
		fields = append(fields, f)
	}
	if !packed {
		off = (off + align - 1) / align * align
	}
	return fields, off, align, nil
}

// log2Bounds returns the values bcc's log2 slot i (1-64) counts.
func log2Bounds(i int) (lo, hi uint64) {
	hi = 1<<uint(i) - 1 // i == 64 wraps to 2^64-1
	lo = (hi >> 1) + 1
	if lo == hi {
		lo--
	}
	return lo, hi
}

// maxIndex returns the highest index with a nonzero count, or -1.
func maxIndex(vals []uint64) int {
	m := -1
	for i, v := range vals {
		if v > 0 {
			m = i
		}
	}
	return m
}

func maxVal(vals []uint64) uint64 {
	var m uint64
	for _, v := range vals {
		m = max(m, v)
	}
	return m
}

// histStars draws bcc's bar for val: floor(width*val/valMax) stars, at
// most width, computed as bcc Python computes it (the quotient as a
// correctly rounded float, compared with each star's index).
func histStars(val, valMax uint64, width int) string {
	var x float64
	hi, lo := bits.Mul64(uint64(width), val)
	if hi == 0 && lo < 1<<53 && valMax < 1<<53 {
		x = float64(lo) / float64(valMax)
	} else {
		num := new(big.Int).Mul(big.NewInt(int64(width)), new(big.Int).SetUint64(val))
		x, _ = new(big.Rat).SetFrac(num, new(big.Int).SetUint64(valMax)).Float64()
	}
	var b strings.Builder
	for i := 0; !(float64(i) > x-1) && i <= width-1; i++ {
		b.WriteByte('*')
	}
	s := b.String()
	if val > valMax {
		s = strings.TrimSuffix(s, "*") + "+"
	}
	return s
}

func writeSectionLine(b *strings.Builder, o HistOptions, section any) {
	var s string
	if o.SectionPrint != nil {
		s = o.SectionPrint(section)
	} else {
		s = pyRepr(section)
	}
	fmt.Fprintf(b, "\n%s = %s\n", o.SectionHeader, s)
}

func writeLog2Hist(b *strings.Builder, vals []uint64, valType string, strip bool) {
	idxMax, valMax := maxIndex(vals), maxVal(vals)
	header, wide, stars := "     %-19s : count     distribution\n", false, histStarsMax
	if idxMax > 32 {
		header, wide, stars = "               %-29s : count     distribution\n", true, histStarsMax/2
	}
	if idxMax > 0 {
		fmt.Fprintf(b, header, valType)
	}
	for i := 1; i <= idxMax; i++ {
		v := vals[i]
		if strip {
			if v == 0 {
				continue
			}
			strip = false
		}
		lo, hi := log2Bounds(i)
		if wide {
			fmt.Fprintf(b, "%20d -> %-20d : %-8d |%-*s|\n", lo, hi, v, stars, histStars(v, valMax, stars))
		} else {
			fmt.Fprintf(b, "%10d -> %-10d : %-8d |%-*s|\n", lo, hi, v, stars, histStars(v, valMax, stars))
		}
	}
}

func writeLinearHist(b *strings.Builder, vals []uint64, valType string, strip bool) {
	idxMax, valMax := maxIndex(vals), maxVal(vals)
	if idxMax >= 0 {
		fmt.Fprintf(b, "     %-13s : count     distribution\n", valType)
	}
	for i := 0; i <= idxMax; i++ {
		v := vals[i]
		if strip {
			if v == 0 {
				continue
			}
			strip = false
		}
		fmt.Fprintf(b, "        %-10d : %-8d |%-*s|\n", i, v, histStarsMax, histStars(v, valMax, histStarsMax))
	}
}

// pyRepr formats a section key as Python's repr formats the value bcc
// Python has for it.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case CharArray:
		return pyQuote(string(x), "b")
	case string:
		return pyQuote(x, "")
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case int, int8, int16, int32, uint, uint8, uint16, uint32:
		return fmt.Sprint(x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// pyQuote quotes s as Python's repr quotes bytes (prefix "b") or a str:
// single quotes unless s holds ' and no ", backslash escapes.
func pyQuote(s, prefix string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte(q)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			if prefix == "" && c >= 0x80 {
				b.WriteByte(c) // a str keeps its printable non-ASCII text
				continue
			}
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(q)
	return b.String()
}
