-- Pandoc filter for docs/design.pdf: a link to another file of the
-- repository (docs/faults.md, ansible/site.yml) would point into the build
-- folder of the machine that rendered the PDF, so it becomes its plain text,
-- which names the file. Links to web addresses and to sections stay links.
function Link(link)
  local target = link.target
  if target:match("^%a[%w+.-]*:") or target:match("^#") then
    return nil
  end
  return link.content
end
