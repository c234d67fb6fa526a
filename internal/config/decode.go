package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"
)

// The parts' settings are plain Go values, time.Duration among them, and
// go-toml reads no durations. So Parse decodes into fileType, a copy of
// Config's shape made once by reflection: the same keys with the same
// tags, each time.Duration a duration, the fields that are not keys left
// out (so that the file cannot set them: they are unknown keys). copyKeys
// carries the values between the two.

var (
	durationType = reflect.TypeFor[time.Duration]()
	fileDuration = reflect.TypeFor[duration]()
	fileType     = decodable(reflect.TypeFor[Config]())
)

// duration is a time.Duration as the file writes it: a string such as
// "30s" or "1h".
type duration struct{ D time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler. Its error is a
// parser error so that the decoder reports the line it came from.
func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || !isDurationText(b) {
		return &unstable.ParserError{Highlight: b, Message: `want a duration such as "30s", "5m" or "1h"`}
	}
	d.D = v
	return nil
}

// isDurationText rejects bare numbers: "5" parses only as "0".
func isDurationText(b []byte) bool {
	return len(b) > 0 && (b[len(b)-1] < '0' || b[len(b)-1] > '9')
}

// keys returns the fields of struct type t that are keys of the file:
// those whose toml tag is not "-". An exported field without a tag
// panics: a part must say of each field whether the file sets it.
func keys(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		switch tag := f.Tag.Get("toml"); {
		case !f.IsExported() || tag == "-":
		case tag == "":
			panic(fmt.Sprintf("config: %v.%s has no toml tag: give it its key, or toml:\"-\"", t, f.Name))
		default:
			out = append(out, f)
		}
	}
	return out
}

// keyName is the key a field of keys is set by.
func keyName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// decodable returns the type the file decodes into for t: t itself, or
// for a struct its keys alone, with each time.Duration a duration.
func decodable(t reflect.Type) reflect.Type {
	switch {
	case t == durationType:
		return fileDuration
	case t.Kind() != reflect.Struct:
		return t
	}
	var fields []reflect.StructField
	for _, f := range keys(t) {
		fields = append(fields, reflect.StructField{Name: f.Name, Type: decodable(f.Type), Tag: f.Tag})
	}
	return reflect.StructOf(fields)
}

// copyKeys sets each key of dst to its value in src, where one of the
// two is of the other's decodable type. Pointers and slices are copied,
// not shared, so that decoding into one never changes the other.
func copyKeys(dst, src reflect.Value) {
	switch {
	case dst.Type() == fileDuration:
		dst.Field(0).SetInt(src.Int())
	case src.Type() == fileDuration:
		dst.SetInt(src.Field(0).Int())
	case dst.Kind() == reflect.Struct:
		for _, f := range keys(dst.Type()) {
			copyKeys(dst.FieldByIndex(f.Index), src.FieldByName(f.Name))
		}
	case dst.Kind() == reflect.Pointer && !src.IsNil():
		p := reflect.New(src.Type().Elem())
		p.Elem().Set(src.Elem())
		dst.Set(p)
	case dst.Kind() == reflect.Slice && !src.IsNil():
		dst.Set(reflect.AppendSlice(reflect.MakeSlice(src.Type(), 0, src.Len()), src))
	default:
		dst.Set(src)
	}
}
