-- Shared by every wrk script of bench/http_bench.py (loaded with dofile).
--
-- * setup() numbers the threads, so each one can draw its own disjoint share of unique patients.
-- * done() prints one machine-readable line, so Python never parses wrk's human output.
-- * load_pool() / unique_patient() make "the n-th unique Patient" from a small pool of templates.
--
-- Why templates: every created Patient must carry a distinct INS. An INS is a 13-character NIR
-- (sex, birth year and month, birth commune = a 10-character prefix, then a 3-digit birth order)
-- plus a 2-digit key = 97 - (NIR mod 97). bench/http_bench.py writes P Patients whose prefixes
-- are all distinct, with "@INS@" where the INS goes. Patient n is template (n mod P) with order
-- (n div P) + 1, so n < P * 999 gives P * 999 distinct, well-formed INS without generating JSON
-- in Python during the run. Each line of the pool file: prefix TAB key_base TAB json, where
-- key_base = (prefix * 1000) mod 97 as computed in Python (it handles Corsica's 2A/2B).

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

function load_pool(path)
   local pool = {}
   for line in io.lines(path) do
      local prefix, base, json = line:match("^(%w+)\t(%d+)\t(.*)$")
      table.insert(pool, { prefix = prefix, base = tonumber(base), json = json })
   end
   assert(#pool > 0, "empty patient pool: " .. path)
   return pool
end

overflow = 0  -- read back in done(): > 0 means the pool was too small and INS repeated

function unique_patient(pool, n)
   local template = pool[(n % #pool) + 1]
   local order = math.floor(n / #pool) % 999 + 1
   if n >= #pool * 999 then overflow = overflow + 1 end
   local key = 97 - (template.base + order) % 97
   local ins = string.format("%s%03d%02d", template.prefix, order, key)
   return (template.json:gsub("@INS@", ins))
end

function file_contents(path)
   local file = assert(io.open(path, "rb"))
   local text = file:read("*a")
   file:close()
   return text
end

function done(summary, latency, requests)
   local overflows = 0
   for _, thread in ipairs(threads) do
      overflows = overflows + (thread:get("overflow") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "overflow": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, overflows))
end
