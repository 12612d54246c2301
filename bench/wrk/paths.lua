-- paths.lua: wrk script for bench_http.sh that GETs a list of paths in turn.
--
--   wrk ... -s paths.lua URL -- PATHS_FILE API_KEY
--
-- PATHS_FILE holds one request path a line (already percent-encoded). Each
-- wrk thread starts at its own place in the list and cycles through it, so
-- the threads do not ask for the same record at the same moment. The same
-- script drives the trivial ceiling server, so that the load generator does
-- the same work per request on both sides of a ratio.

local next_id = 0
function setup(thread)
  thread:set("thread_index", next_id)
  next_id = next_id + 1
end

local paths = {}
local at = 1

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  if #paths == 0 then
    error("paths.lua: no paths in " .. args[1])
  end
  wrk.headers["x-api-key"] = args[2]
  at = ((thread_index or 0) * 7919) % #paths + 1
end

function request()
  local p = paths[at]
  at = at + 1
  if at > #paths then
    at = 1
  end
  return wrk.format("GET", p)
end
