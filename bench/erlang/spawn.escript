#!/usr/bin/env escript
%% Erlang/OTP baseline for Theater's spawn benchmark (crates/theater-bench/src/spawn.rs):
%% spawns N idle processes and reports time per spawn and resident bytes per idle process.
%%
%%   escript bench/erlang/spawn.escript
%%
%% THEATER_BENCH_ACTORS sets N (default 10000). JSON on stdout, anything else on stderr.
-mode(compile). % escripts are interpreted by default, which would measure erl_eval.

-define(WARMUP, 50). % as the Theater bench: touch the code paths once before timing
-define(TIMEOUT, 600000).

main(_) ->
    log_to_stderr(),
    try
        N = actors(),
        {Pid, Ref} = spawn_monitor(fun() -> exit({ok, run(N)}) end),
        receive
            {'DOWN', Ref, process, Pid, {ok, ok}} -> ok;
            {'DOWN', Ref, process, Pid, Reason} -> error({bench_failed, Reason})
        after ?TIMEOUT -> error(timeout)
        end
    catch Class:Why:Stack ->
        io:format(standard_error, "spawn.escript failed: ~p:~p~n~p~n", [Class, Why, Stack]),
        halt(1)
    end.

actors() ->
    case os:getenv("THEATER_BENCH_ACTORS") of
        false -> 10000;
        S -> list_to_integer(S)
    end.

%% Runs in a process of its own, as Theater spawns from a worker task.
run(N) ->
    Warm = spawn_n(?WARMUP, []),
    erlang:garbage_collect(),
    VmBefore = erlang:memory(processes),
    RssBefore = rss_bytes(),
    Start = erlang:monotonic_time(nanosecond),
    Idle = spawn_n(N, []),
    Seconds = (erlang:monotonic_time(nanosecond) - Start) / 1.0e9,
    RssAfter = rss_bytes(),
    VmAfter = erlang:memory(processes),
    io:format("{\"bench\":\"spawn\",\"mode\":\"erlang\",\"actors\":~b,\"us_per_spawn\":~.3f,"
              "\"spawns_per_sec\":~b,\"rss_bytes_per_idle_actor\":~b}~n",
              [N, Seconds * 1.0e6 / N, round(N / Seconds), max(0, RssAfter - RssBefore) div N]),
    % The row Theater's density benchmark fills with a hibernated actor: an idle process is
    % what an Erlang program keeps around in its place.
    io:format("{\"bench\":\"hibernated-actor\",\"mode\":\"erlang\",\"actors\":~b,"
              "\"bytes_per_actor\":~b}~n",
              [N, max(0, RssAfter - RssBefore) div N]),
    % The VM's own count, for comparison with the OS figure (stderr keeps stdout JSON only).
    io:format(standard_error, "spawn: erlang:memory(processes) grew ~b bytes per idle process~n",
              [(VmAfter - VmBefore) div N]),
    [P ! stop || P <- Warm ++ Idle],
    ok.

%% Spawns one at a time and waits for each init to finish, as Theater's `spawn(..).await`
%% returns only once the actor's init has run.
spawn_n(0, Acc) -> Acc;
spawn_n(I, Acc) ->
    Parent = self(),
    P = spawn(fun() -> idle(Parent) end),
    receive {ready, P} -> spawn_n(I - 1, [P | Acc]) end.

idle(Parent) ->
    State = <<0:512>>, % the trivial init: a 64-byte state
    Parent ! {ready, self()},
    receive stop -> byte_size(State) end.

%% Resident memory of the VM, in bytes: /proc/self/statm's second field is resident pages
%% (4096 bytes, as the Theater bench assumes, so the two figures compare).
rss_bytes() ->
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_Size, Resident | _] = binary:split(Statm, <<" ">>, [global]),
    binary_to_integer(Resident) * 4096.

%% The VM's own reports (a crash, "Too many processes") go to stdout by default; stdout is
%% for the JSON lines only.
log_to_stderr() ->
    ok = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h, #{config => #{type => standard_error}}).
