package netif

import "testing"

func TestID(t *testing.T) {
	id := ID{Netns: 4026532000, Ifindex: 3}
	if id.String() != "4026532000/3" || id.IsLocalStack() {
		t.Errorf("%v: string %q, local stack %v", id, id.String(), id.IsLocalStack())
	}
	if ls := LocalStack(id.Netns); !ls.IsLocalStack() || ls.Netns != id.Netns {
		t.Errorf("LocalStack(%d) = %v", id.Netns, ls)
	}
}

func TestDirection(t *testing.T) {
	for d, want := range map[Direction]string{Ingress: "ingress", Egress: "egress", 0: "direction(0)", 7: "direction(7)"} {
		if d.String() != want || d.Valid() != (d == Ingress || d == Egress) {
			t.Errorf("%d: %q valid %v, want %q", uint8(d), d.String(), d.Valid(), want)
		}
	}
	var zero Direction
	if zero.Valid() {
		t.Error("the zero Direction is valid")
	}
}
