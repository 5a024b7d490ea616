-- POST a new Patient, each with its own INS, to the URL given to wrk (…/fhir/Patient).
-- Script arguments: pool_file thread_count
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local pool, step, n
local headers = { ["Content-Type"] = "application/fhir+json" }

function init(args)
   pool = load_pool(args[1])
   step = tonumber(args[2])
   n = thread_id  -- this thread takes patients thread_id, thread_id + step, ...
end

function request()
   local body = unique_patient(pool, n)
   n = n + step
   return wrk.format("POST", nil, headers, body)
end
