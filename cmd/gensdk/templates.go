package main

import (
	"embed"
	"text/template"
)

// The templates of the generated files, one directory per language. They lay out what the
// renderers have already spelled in the language (see the *View types).
//
//go:embed templates
var templateFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFS,
	"templates/go/*.tmpl", "templates/typescript/*.tmpl", "templates/python/*.tmpl"))
