-- wrk script: valid, distinct inquiries (one e-mail each), optionally paced per connection.
-- BENCH_RUN keeps e-mails distinct across runs; BENCH_DELAY_MS paces each connection.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  counter = 0
  run = os.getenv("BENCH_RUN") or "0"
  pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
  path = os.getenv("BENCH_PATH") or "/api/v1/inquiries"
end

local template = [[{"patient": {"first_name": "Ana", "last_name": "Ruiz",
"email": "bench.%s.%d.%d@example.org", "phone": "+1 415 555 0100", "country": "US",
"language": "es", "birth_year": 1961}, "treatment": "stem-cell-spine-arthritis",
"condition": "Facet joint arthritis L4-L5 confirmed by X-ray, pain for 3 years.",
"has_imaging": true, "destinations": ["MX", "PA"], "budget": {"amount": 12000, "currency": "USD"},
"consent": {"data_processing": true, "share_with_clinics": true, "marketing": false},
"source": {"utm_source": "bench"}, "website": ""}]]

function request()
  counter = counter + 1
  local body = string.format(template, run, tid, counter)
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function delay()
  return pause
end
