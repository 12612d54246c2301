-- creates.lua: wrk script for bench_http.sh: durable creates, each with a
-- body of its own.
--
--   wrk ... -s creates.lua URL -- API_KEY RUN_TAG
--
-- POST /contacts with a contact whose email holds the run tag, the wrk
-- thread and a per-thread counter, so every request of every run is a new,
-- unique email (a repeated one would be a 409, not a create). Names,
-- companies and titles come from short lists, as in a real CRM import.

local next_id = 0
function setup(thread)
  thread:set("thread_index", next_id)
  next_id = next_id + 1
end

local firsts = {"Anna", "Bruno", "Chen", "Dalia", "Emil", "Fatima", "Goran",
                "Hana", "Ivo", "José", "Kira", "Lars", "Mina", "Nils",
                "Olga", "Priya", "Rafael", "Sofia", "Tomas", "Zoë"}
local lasts = {"Andersen", "Baker", "Costa", "Dvořák", "Eklund", "Fischer",
               "García", "Hoffmann", "Ivanova", "Jensen", "Kowalski",
               "Müller", "Novak", "Okafor", "Petrov", "Quinn", "Rossi",
               "Schmidt", "Tanaka", "Weber"}
local companies = {"Northwind Traders", "Contoso Ltd", "Fabrikam Inc.",
                   "Globex Corporation", "Initech", "Umbrella Holdings",
                   "Stark Industries", "Wayne Enterprises", "Hooli",
                   "Vandelay Industries"}
local titles = {"Account Executive", "Buyer", "CTO", "Head of Sales",
                "Office Manager", "Procurement Lead", "Software Engineer",
                "VP Marketing"}

local tag = "run"
local n = 0

function init(args)
  wrk.headers["x-api-key"] = args[1]
  wrk.headers["content-type"] = "application/json"
  tag = args[2] or tag
end

function request()
  n = n + 1
  local t = thread_index or 0
  local first = firsts[n % #firsts + 1]
  local last = lasts[(n * 7 + t) % #lasts + 1]
  local body = string.format(
      '{"first_name":"%s","last_name":"%s",' ..
      '"email":"bench.%s.%d.%d@load.example.com",' ..
      '"phone":"+1 555 %03d %04d","company":"%s","job_title":"%s",' ..
      '"notes":"created by the HTTP benchmark, thread %d"}',
      first, last, tag, t, n, t, n % 10000,
      companies[(n * 3 + t) % #companies + 1], titles[n % #titles + 1], t)
  return wrk.format("POST", "/contacts", nil, body)
end
