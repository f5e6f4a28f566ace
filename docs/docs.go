// Package docs holds reference.md, the markdown reference of the command line. It is generated
// from the command tree, like the manual pages; a test fails when the committed copy is stale.
package docs

//go:generate sh -c "go run .. man --format markdown > reference.md"
