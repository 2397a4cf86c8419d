// Package frameworks holds end-to-end tests in which service frameworks'
// own registration code registers instances into a real registry and
// discodns answers them. It is a module of its own, so that the
// frameworks' dependencies stay out of discodns's.
package frameworks
