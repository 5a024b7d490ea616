-- PUT the same Patient body to the URL given to wrk (…/fhir/Patient/<id>): each PUT adds a version.
-- Script argument: body_file
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prepared

function init(args)
   prepared = wrk.format("PUT", nil, { ["Content-Type"] = "application/fhir+json" }, file_contents(args[1]))
end

function request()
   return prepared
end
