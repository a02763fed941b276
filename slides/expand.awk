# expand.awk - turn a deck source into the Markdown that Marp renders.
#
# Usage: awk -v regions=INDEX -v report=REPORT.md -v charts=DIR -v chartdir=PATH \
#            -f expand.awk DECK.md
#   regions  the output of regions.awk (NAME FILE FIRST LAST per line)
#   report   the newest benchmark report (may not exist)
#   charts   the directory the report's *.svg were copied to, as the output deck names it
#   chartdir the same directory as a path from the current directory
#
# Placeholders, each alone on its line except the chart image:
#   <!-- region: NAME -->      a code block with the region's lines, dedented, and its source
#   <!-- bench: summary -->    the first table under the report's "Summary" heading
#   <!-- bench: table SLUG cols=1,2,5 -->
#                              the first table under the heading that contains SLUG, with
#                              only the columns listed (all if cols= is left out)
#   <!-- bench: source -->     one line naming the report, its machine and its mode
#   ![alt](bench:NAME.svg)     the report's chart; a note to run make bench if it is missing
#   <!-- routers: table NAME -->  the file TABLES + NAME.md (build.sh writes them from the
#                              router descriptions with scripts/routers.sh)
# Everything else is copied as it is. A region that does not exist is fatal (exit 1): the
# deck must never show code that is not in the sources.

function fail(msg) {
    printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"
    failed = 1
}

# The note that stands in for missing numbers, in the deck's language (its front matter's lang).
function no_report(what) {
    if (lang == "es")
        print "> **" tr[what] ": todavía no hay reporte del benchmark.** Correr `make bench` (o `make bench-quick`) y después `make slides`."
    else
        print "> **" what ": no benchmark report yet.** Run `make bench` (or `make bench-quick`), then `make slides`."
}

function report_exists(    line, r) {
    r = (getline line < report) > 0
    close(report)
    return r
}

function file_exists(path,    line, r) {
    r = (getline line < path) >= 0
    close(path)
    return r
}

function emit_region(name,    file, first, last, n, i, line, lines, min, size, caption) {
    if (!(name in rfile)) {
        fail("no slide region named '" name "' in the sources (see slides/check-regions.sh)")
        return
    }
    file = rfile[name]
    first = rfirst[name]
    last = rlast[name]
    n = 0
    i = 0
    while ((getline line < file) > 0) {
        i++
        if (i >= first && i <= last)
            lines[++n] = line
    }
    close(file)
    # Strip the indentation the lines share, so a region from inside a function starts at the
    # left edge of the slide.
    min = -1
    for (i = 1; i <= n; i++) {
        if (lines[i] ~ /^[ \t]*$/)
            continue
        match(lines[i], /^[ ]*/)
        if (min < 0 || RLENGTH < min)
            min = RLENGTH
    }
    if (min < 0)
        min = 0
    # The wrapper's class lets the theme shrink the font of a long region so that it still
    # fits the slide; the blank lines keep the code block Markdown inside the HTML.
    size = n > 24 ? " longer" : (n > 18 ? " long" : "")
    printf "<div class=\"region%s\">\n\n", size
    print (file ~ /\.rs$/ ? "```rust" : "```c")
    for (i = 1; i <= n; i++)
        print substr(lines[i], min + 1)
    print "```"
    caption = file
    sub(/^\.\//, "", caption)
    printf "\n</div>\n<div class=\"src\">%s:%d-%d</div>\n", caption, first, last
}

# A table of the report: the first one after the first heading whose text, lowercased with
# runs of other characters turned into "-", contains slug ("summary", "slow-consumer"). cols,
# if not empty, is a comma-separated list of the columns to keep, counting from 1.
function emit_table(slug, cols,    n, i, line, text, heading_at, h, start, stop, want, nwant, f, nf, out) {
    if (!report_exists()) {
        no_report("Numbers")
        return
    }
    n = 0
    heading_at = 0
    while ((getline line < report) > 0) {
        text[++n] = line
        if (!heading_at && line ~ /^#/) {
            h = tolower(line)
            sub(/^#+[ \t]*/, "", h)
            gsub(/[^a-z0-9]+/, "-", h)
            if (index(h, slug))
                heading_at = n
        }
    }
    close(report)
    start = 0
    for (i = heading_at + 1; heading_at && i <= n && !start; i++) {
        if (text[i] ~ /^#/)
            break
        if (text[i] ~ /^[ \t]*\|/)
            start = i
    }
    if (!start) { # a report of another shape: say so on the slide and in the build's output
        printf "%s:%d: warning: no table under a heading matching '%s' in %s\n", FILENAME, FNR,
            slug, report > "/dev/stderr"
        print "> **" (lang == "es" ? "El reporte del benchmark no tiene la tabla" : "The benchmark report has no table") " `" slug "`.**"
        return
    }
    nwant = cols == "" ? 0 : split(cols, want, ",")
    for (stop = start; stop <= n && text[stop] ~ /^[ \t]*\|/; stop++) {
        if (!nwant) {
            print text[stop]
            continue
        }
        # "| a | b |" splits into "", " a ", " b ", "": column k is field k + 1.
        nf = split(text[stop], f, "|")
        out = "|"
        for (i = 1; i <= nwant; i++)
            out = out f[want[i] + 1] "|"
        print out
    }
}

# One line saying which report the numbers come from: its title, machine and mode.
function emit_source(    line, title, machine, mode, f) {
    if (!report_exists()) {
        no_report("Numbers")
        return
    }
    while ((getline line < report) > 0) {
        if (title == "" && line ~ /^# /)
            title = substr(line, 3)
        split(line, f, "|")
        if (f[2] ~ /^ *machine *$/)
            machine = f[3]
        if (f[2] ~ /^ *mode *$/) {
            mode = f[3]
            sub(/:.*/, "", mode)
        }
    }
    close(report)
    gsub(/^ +| +$/, "", machine)
    gsub(/^ +| +$/, "", mode)
    sub(/, [0-9.]+ GiB.*$/, "", machine) # the CPU and its cores; the report has the rest
    sub(/^Router benchmark, /, "", title)
    printf "<div class=\"src\">%s · %s · %s · %s run</div>\n", report, title, machine, mode
}

BEGIN {
    tr["Summary"] = "Resumen"
    tr["Summary table"] = "Tabla resumen"
    tr["Numbers"] = "Números"
    while ((getline line < regions) > 0) {
        split(line, f, "\t")
        rfile[f[1]] = f[2]
        rfirst[f[1]] = f[3]
        rlast[f[1]] = f[4]
    }
    close(regions)
}

FNR < 20 && /^lang: [a-z]+/ {
    lang = $2
}

/^<!-- region: [a-z0-9-]+ -->[ \t]*$/ {
    name = $0
    sub(/^<!-- region: /, "", name)
    sub(/ -->[ \t]*$/, "", name)
    emit_region(name)
    next
}

/^<!-- bench: summary -->[ \t]*$/ {
    emit_table("summary", "")
    next
}

/^<!-- bench: table [a-z0-9-]+( cols=[0-9]+(,[0-9]+)*)? -->[ \t]*$/ {
    slug = $4
    cols = $5
    sub(/^cols=/, "", cols)
    if (cols == "-->")
        cols = ""
    emit_table(slug, cols)
    next
}

/^<!-- routers: table [a-z]+ -->[ \t]*$/ {
    file = tables $4 ".md"
    if (!file_exists(file)) {
        fail("no router table " $4)
        next
    }
    while ((getline line < file) > 0)
        print line
    close(file)
    next
}

/^<!-- bench: source -->[ \t]*$/ {
    emit_source()
    next
}

/\]\(bench:[A-Za-z0-9._-]+\.svg\)/ {
    chart = $0
    sub(/^.*\]\(bench:/, "", chart)
    sub(/\).*$/, "", chart)
    if (file_exists(chartdir "/" chart)) {
        sub(/\]\(bench:/, "](" charts "/")
        print
    } else {
        tr["Chart " chart] = "Gráfico " chart
        no_report("Chart " chart)
    }
    next
}

/<!-- (region|bench|routers):/ {
    fail("malformed placeholder: " $0)
    next
}

{
    print
}

END {
    exit failed
}
