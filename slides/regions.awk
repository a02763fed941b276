# regions.awk - index the slide regions marked in C sources.
#
# A region is a run of lines between two marker lines, each alone on its line:
#
#     /* slide: mutex-forward */
#     ...the code a slide quotes...
#     /* end slide */
#
# Usage: awk -f regions.awk FILE...
# Prints one line per region, tab-separated: NAME FILE FIRST LAST, where FIRST..LAST are the
# lines between the markers. Prints every malformed, nested, unterminated, empty or duplicated
# region on stderr as "FILE:LINE: problem" and then exits 1.

function problem(file, line, msg) {
    printf "%s:%d: %s\n", file, line, msg > "/dev/stderr"
    bad = 1
}

# A file ended (or the input did) while a region was still open.
function close_file() {
    if (open_name != "")
        problem(open_file, open_line, "region '" open_name "' is never closed (no /* end slide */)")
    open_name = ""
}

FNR == 1 {
    close_file()
}

# Anything that looks like a marker must be exactly a marker: a typo would otherwise silently
# turn a region into ordinary code.
/\/\*[ \t]*(slide[ \t]*:|end[ \t]+slide[ \t]*\*\/)/ {
    if ($0 ~ /^[ \t]*\/\* slide: [a-z0-9]+(-[a-z0-9]+)* \*\/[ \t]*$/) {
        name = $0
        sub(/^[ \t]*\/\* slide: /, "", name)
        sub(/ \*\/[ \t]*$/, "", name)
        if (open_name != "") {
            problem(FILENAME, FNR, "region '" name "' starts inside region '" open_name "' (opened at line " open_line ")")
            next
        }
        if (name in where) {
            problem(FILENAME, FNR, "region '" name "' is marked twice (also at " where[name] ")")
        }
        where[name] = FILENAME ":" FNR
        open_name = name
        open_file = FILENAME
        open_line = FNR
        next
    }
    if ($0 ~ /^[ \t]*\/\* end slide \*\/[ \t]*$/) {
        if (open_name == "") {
            problem(FILENAME, FNR, "/* end slide */ without a region open")
            next
        }
        if (FNR == open_line + 1)
            problem(FILENAME, FNR, "region '" open_name "' is empty")
        else
            printf "%s\t%s\t%d\t%d\n", open_name, FILENAME, open_line + 1, FNR - 1
        open_name = ""
        next
    }
    problem(FILENAME, FNR, "malformed slide marker (want '/* slide: lowercase-name */' or '/* end slide */' alone on a line)")
}

END {
    close_file()
    exit bad
}
