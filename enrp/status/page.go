package status

import (
	"html/template"
	"reflect"
	"slices"
	"strconv"

	"github.com/go-rserpool/rserpool/enrp"
)

// statRow is one count of enrp.Stats on the page.
type statRow struct {
	Name  string
	Value string
}

// statRows lists the numeric fields of s (and of the structs in it, their
// names prefixed with the struct's), so that the page shows every count
// enrp.Stats has, whatever it grows.
func statRows(s enrp.Stats) []statRow {
	var rows []statRow
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			switch fv.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				rows = append(rows, statRow{prefix + f.Name, strconv.FormatInt(fv.Int(), 10)})
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				rows = append(rows, statRow{prefix + f.Name, strconv.FormatUint(fv.Uint(), 10)})
			case reflect.Struct:
				walk(prefix+f.Name+".", fv)
			}
		}
	}
	walk("", reflect.ValueOf(s))
	return rows
}

// policyRows is a PE's policy values in a stable order.
type valueRow struct {
	Label string
	Text  string
}

func valueRows(m map[string]float64) []valueRow {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	rows := make([]valueRow, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, valueRow{valueLabel(k), valueText(k, m[k])})
	}
	return rows
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"stats":   statRows,
	"values":  valueRows,
	"percent": percent,
	"ago":     ago,
	"time":    func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04:05.000 MST") },
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} {{.ServerID}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; }
.handle { font-family: ui-monospace, monospace; }
.error { color: #a00; font-weight: bold; }
.muted { color: #666; }
</style>
</head>
<body>
<h1>{{.Title}} <span id="server-id">{{.ServerID}}</span></h1>
<p>ASAP at <span id="addr">{{.Addr}}</span> · as of {{time .Time}} · <a href="?format=json">JSON</a></p>
{{if .Error}}<p class="error" id="error">Registrar unavailable: {{.Error}}</p>{{end}}

<h2>Pools ({{len .Pools}})</h2>
{{if not .Pools}}<p class="muted" id="no-pools">No pools.</p>{{end}}
{{range .Pools}}
<section class="pool">
<h3>Pool <span class="handle">{{.Handle}}</span></h3>
<p>Policy {{.Policy}} · {{.Transport}}{{with .Use}} ({{.}}){{end}} · {{len .PEs}} PE{{if ne (len .PEs) 1}}s{{end}} listed</p>
<table>
<thead><tr><th>PE</th><th>Home registrar</th><th>Policy</th><th>Load</th><th>User transport</th><th>Last registration</th><th>Expires</th><th>Unreachable reports</th></tr></thead>
<tbody>
{{range .PEs}}<tr class="pe">
<td class="pe-id">{{.ID}}</td>
<td>{{.Home}}{{if .Owned}} (this registrar{{with .Remote}}, from {{.}}{{end}}){{end}}</td>
<td>{{.Policy}}{{range values .PolicyValues}}<br>{{.Label}} {{.Text}}{{end}}</td>
<td class="num">{{with .Load}}{{percent .}}{{else}}–{{end}}</td>
<td>{{with .UserTransport}}{{.Protocol}}{{with .Use}} ({{.}}){{end}}{{range .Addrs}}<br>{{.}}{{end}}{{end}}</td>
<td>{{ago .Age}} ago</td>
<td>{{time .Expiry}}</td>
<td class="num">{{.UnreachableReports}}</td>
</tr>
{{end}}</tbody>
</table>
</section>
{{end}}
{{if .PEsLeftOut}}<p class="muted">{{.PEsLeftOut}} more PEs not listed.</p>{{end}}

<h2>Registrar statistics</h2>
<table id="stats">
<tbody>
{{range stats .Stats}}<tr><th>{{.Name}}</th><td class="num">{{.Value}}</td></tr>
{{end}}</tbody>
</table>

<h2>Recent events</h2>
<p class="muted">{{len .Events}} shown of {{.EventsSeen}} recorded{{if .ForwardDropped}}; {{.ForwardDropped}} not passed on to the host{{end}}.</p>
<table id="events">
<thead><tr><th>Time</th><th>Event</th><th>Pool</th><th>PE</th><th>Reason</th></tr></thead>
<tbody>
{{range .Events}}<tr><td>{{time .Time}}</td><td>{{.Kind}}</td><td class="handle">{{.Pool}}</td><td>{{.PE}}</td><td>{{.Reason}}</td></tr>
{{end}}</tbody>
</table>
</body>
</html>
`
