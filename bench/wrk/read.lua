-- GET the URL given to wrk (read-by-id); only the shared done() report is added.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
