-- bodies.lua: wrk script for bench_http.sh that POSTs a list of JSON bodies
-- in turn to one path.
--
--   wrk ... -s bodies.lua URL -- BODIES_FILE API_KEY PATH
--
-- BODIES_FILE holds one request body a line. As in paths.lua, each wrk
-- thread starts at its own place in the list and cycles through it, and
-- the same script drives the trivial ceiling server.

local next_id = 0
function setup(thread)
  thread:set("thread_index", next_id)
  next_id = next_id + 1
end

local bodies = {}
local at = 1
local path = "/"

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      bodies[#bodies + 1] = line
    end
  end
  if #bodies == 0 then
    error("bodies.lua: no bodies in " .. args[1])
  end
  wrk.headers["x-api-key"] = args[2]
  wrk.headers["content-type"] = "application/json"
  path = args[3]
  at = ((thread_index or 0) * 7919) % #bodies + 1
end

function request()
  local b = bodies[at]
  at = at + 1
  if at > #bodies then
    at = 1
  end
  return wrk.format("POST", path, nil, b)
end
