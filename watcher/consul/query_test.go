package consul

import "testing"

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct{ prev, index, want uint64 }{
		{0, 0, 1},   // never block on 0
		{5, 9, 9},   // moved on
		{9, 9, 9},   // no change
		{9, 5, 0},   // went backwards: start over
		{0, 42, 42}, // first answer
	} {
		if got := nextIndex(tc.prev, tc.index); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.index, got, tc.want)
		}
	}
}
