#!/usr/bin/env bash
# Builds the design document docs/design.pdf from docs/design.md, the
# Graphviz diagrams in docs/diagrams/ and the print style in docs/pdf/, with
# Debian's pandoc, graphviz and weasyprint.
#
# Usage: scripts/docs.sh build|check
#   build  render the diagrams (to SVG beside each .dot) and
#          docs/design.pdf. Fails while docs/design.md contains a
#          placeholder for a figure not measured yet ([[topic: what]]).
#          DOCS_ALLOW_PLACEHOLDERS=1 renders them in red into
#          build/docs/design-preview.pdf instead, never docs/design.pdf.
#   check  the lint stage's quick checks: the diagrams parse, match the
#          inventories and their SVGs, the files that design.md links
#          exist, and docs/design.pdf was built from the current sources.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
source_md=docs/design.md
out_dir=build/docs
pdf=docs/design.pdf
placeholder_pattern='\[\[[a-z][a-z-]*:[^]]*\]\]'

die() {
	printf 'docs: %s\n' "$*" >&2
	exit 1
}

require_tools() {
	local tool missing=()
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	((${#missing[@]} == 0)) ||
		die "missing ${missing[*]}; install them with: apt-get install pandoc weasyprint graphviz poppler-utils fonts-dejavu-core"
}

# sources_hash: print one SHA-256 over the document's own sources, which the
# PDF carries in its Keywords so that `check` can tell a stale one. Images in
# docs/img/ are left out: the suites rewrite them on every run, and the
# figures copied from their pages are refreshed by hand anyway.
sources_hash() {
	sha256sum "$source_md" docs/pdf/* docs/diagrams/*.dot | sha256sum | cut -d' ' -f1
}

list_placeholders() {
	grep -noE "$placeholder_pattern" "$source_md" || true
}

build() {
	require_tools pandoc dot weasyprint python3
	local placeholders target=$pdf
	placeholders=$(list_placeholders)
	if [[ -n $placeholders ]]; then
		if [[ ${DOCS_ALLOW_PLACEHOLDERS:-} != 1 ]]; then
			printf '%s\n' "$placeholders" >&2
			die "$source_md still has $(wc -l <<<"$placeholders") placeholders (listed above, LINE:TEXT); fill them in from the docs pages, or preview with DOCS_ALLOW_PLACEHOLDERS=1"
		fi
		target=$out_dir/design-preview.pdf
		printf 'docs: %s placeholders left; writing a preview, not %s\n' "$(wc -l <<<"$placeholders")" "$pdf" >&2
	fi

	python3 scripts/check-diagrams.py
	rm -rf "$out_dir"
	mkdir -p "$out_dir/diagrams"
	local dot_file
	# The SVGs are committed beside their sources, so that the Markdown
	# pages show them too.
	for dot_file in docs/diagrams/*.dot; do
		dot -Tsvg "$dot_file" -o "${dot_file%.dot}.svg"
		cp "${dot_file%.dot}.svg" "$out_dir/diagrams/"
	done
	[[ -d docs/img ]] && cp -r docs/img "$out_dir/img"
	cp docs/pdf/style.css "$out_dir/style.css"

	pandoc "$source_md" --from markdown --to html5 --standalone \
		--template docs/pdf/template.html --lua-filter docs/pdf/links.lua \
		--toc --toc-depth=2 --number-sections --section-divs --wrap=none \
		--variable css=style.css --metadata sources-sha256="$(sources_hash)" \
		--output "$out_dir/design.html"
	# Placeholders in red, so that a preview shows what is missing.
	sed -i -E "s/($placeholder_pattern)/<span class=\"placeholder\">\1<\/span>/g" "$out_dir/design.html"

	weasyprint --base-url "$out_dir/" "$out_dir/design.html" "$target"
	local pages=""
	command -v pdfinfo >/dev/null 2>&1 && pages=", $(pdfinfo "$target" | awk '/^Pages:/ { print $2 }') pages"
	printf 'docs: wrote %s%s\n' "$target" "$pages"
}

check() {
	require_tools dot python3 pdfinfo
	local dot_file
	for dot_file in docs/diagrams/*.dot; do
		dot -Tcanon "$dot_file" >/dev/null || die "$dot_file does not parse"
		dot -Tsvg "$dot_file" | cmp -s - "${dot_file%.dot}.svg" ||
			die "${dot_file%.dot}.svg is missing or older than $dot_file; run make docs and commit it"
	done
	python3 scripts/check-diagrams.py

	# Relative links and images of design.md, which resolve from docs/.
	local target broken_links=0
	while read -r target; do
		case $target in
		diagrams/*.svg) target=diagrams/$(basename "$target" .svg).dot ;;
		esac
		if [[ ! -e docs/${target%%#*} ]]; then
			printf 'docs: %s links %s, which does not exist\n' "$source_md" "docs/$target" >&2
			broken_links=1
		fi
	done < <(grep -oE '\]\([^)#:]+(#[^)]*)?\)' "$source_md" | sed -E 's/^\]\((.*)\)$/\1/' | sort -u)
	((broken_links == 0)) || exit 1

	local placeholders
	placeholders=$(list_placeholders)
	if [[ ! -f $pdf ]]; then
		# No PDF can exist while a figure is missing, so that state is the
		# expected one until the last measurement lands.
		[[ -n $placeholders ]] || die "$pdf is missing; run make docs and commit it"
		printf 'docs: %s not built yet: %s placeholders left in %s\n' "$pdf" "$(wc -l <<<"$placeholders")" "$source_md"
		return 0
	fi
	local recorded
	recorded=$(pdfinfo "$pdf" | sed -nE 's/^Keywords: *sources-sha256 ([0-9a-f]+).*/\1/p')
	[[ $recorded == "$(sources_hash)" ]] || die "$pdf is older than its sources; run make docs and commit it"
	printf 'docs: %s is up to date\n' "$pdf"
}

case ${1:-} in
build) build ;;
check) check ;;
*)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
