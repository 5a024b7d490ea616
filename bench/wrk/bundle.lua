-- POST transaction Bundles of new Patients (each with its own INS) to the URL given to wrk (…/fhir).
-- Script arguments: pool_file thread_count entries_per_bundle
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local pool, step, size, bundle_no
local headers = { ["Content-Type"] = "application/fhir+json" }

function init(args)
   pool = load_pool(args[1])
   step = tonumber(args[2])
   size = tonumber(args[3])
   bundle_no = thread_id  -- this thread builds bundles thread_id, thread_id + step, ...
end

function request()
   local entries = {}
   for i = 0, size - 1 do
      local n = bundle_no * size + i
      entries[#entries + 1] = string.format(
         '{"fullUrl":"urn:uuid:%08x-0000-4000-8000-%012x","resource":%s,"request":{"method":"POST","url":"Patient"}}',
         bundle_no, i, unique_patient(pool, n))
   end
   bundle_no = bundle_no + step
   local body = '{"resourceType":"Bundle","type":"transaction","entry":[' .. table.concat(entries, ",") .. "]}"
   return wrk.format("POST", nil, headers, body)
end
