#!/usr/bin/env escript
%% Erlang/OTP baseline for Theater's messaging benchmarks
%% (crates/theater-bench/src/messaging.rs): the same workloads, as plain processes.
%%
%%   escript bench/erlang/messaging.escript
%%
%% Prints one JSON line per workload on stdout; anything else goes to stderr.
%% THEATER_BENCH_SCALE (default 1.0) scales every count, for quick runs.
-mode(compile). % escripts are interpreted by default, which would measure erl_eval.

-define(WARMUP, 1000).
-define(TIMEOUT, 600000). % ms; a hung workload fails instead of hanging forever.

main(_) ->
    log_to_stderr(),
    try
        bench("ping-pong-request", 200000, "round_trip_us", fun ping_pong_request/1, fun per_op_us/2),
        bench("ping-pong-send", 200000, "round_trip_us", fun ping_pong_send/1, fun per_op_us/2),
        bench("counting", 1000000, "messages_per_second", fun counting/1, fun per_second/2),
        bench("thread-ring", 1000000, "hop_us", fun thread_ring/1, fun per_op_us/2),
        bench("fork-join", 100000, "per_child_us", fun fork_join/1, fun per_op_us/2)
    catch Class:Reason:Stack ->
        io:format(standard_error, "messaging.escript failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
        halt(1)
    end.

%% Runs Work(N) once with ?WARMUP iterations untimed, then with the scaled count timed.
%% Work runs in a fresh process, as an actor would, so the escript's own
%% process (its heap and mailbox) stays out of the figures.
bench(Name, BaseN, Unit, Work, Figure) ->
    N = scaled(BaseN),
    in_process(fun() -> Work(?WARMUP) end),
    Seconds = in_process(fun() -> Work(N) end),
    io:format("{\"bench\":\"~s\",\"mode\":\"erlang\",\"n\":~b,\"seconds\":~.3f,\"~s\":~.3f}~n",
              [Name, N, Seconds, Unit, float(Figure(N, Seconds))]).

per_op_us(N, Seconds) -> Seconds * 1.0e6 / N.
per_second(N, Seconds) -> N / Seconds.

scaled(N) ->
    Scale = case os:getenv("THEATER_BENCH_SCALE") of
                false -> 1.0;
                S -> to_float(S)
            end,
    max(1, trunc(N * Scale)).

to_float(S) ->
    case string:to_float(S) of
        {F, ""} -> F;
        _ -> float(list_to_integer(S)) % "1" is not a float to string:to_float
    end.

%% Runs Fun in a new process and returns its result, failing if the process fails.
in_process(Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({ok, Fun()}) end),
    receive
        {'DOWN', Ref, process, Pid, {ok, Result}} -> Result;
        {'DOWN', Ref, process, Pid, Reason} -> error({workload_failed, Reason})
    after ?TIMEOUT -> error(timeout)
    end.

%% Seconds Fun takes, by the monotonic clock.
timed(Fun) ->
    Start = erlang:monotonic_time(nanosecond),
    Fun(),
    (erlang:monotonic_time(nanosecond) - Start) / 1.0e9.

await(Msg) ->
    receive Msg -> ok after ?TIMEOUT -> error({timeout, Msg}) end.

%% --- ping-pong-request: a synchronous call, a fresh ref per request (as gen_server:call).

ping_pong_request(N) ->
    B = spawn_link(fun responder/0),
    T = timed(fun() -> request_loop(B, N) end),
    B ! stop,
    T.

request_loop(_, 0) -> ok;
request_loop(B, I) ->
    Ref = make_ref(),
    B ! {req, self(), Ref},
    receive {Ref, pong} -> request_loop(B, I - 1) end.

responder() ->
    receive
        {req, From, Ref} -> From ! {Ref, pong}, responder();
        stop -> ok
    end.

%% --- ping-pong-send: plain one-way sends each way, no refs.

ping_pong_send(N) ->
    A = self(),
    B = spawn_link(fun() -> echo(A) end),
    T = timed(fun() -> send_loop(B, N) end),
    B ! stop,
    T.

send_loop(_, 0) -> ok;
send_loop(B, I) ->
    B ! ping,
    receive pong -> send_loop(B, I - 1) end.

echo(A) ->
    receive
        ping -> A ! pong, echo(A);
        stop -> ok
    end.

%% --- counting: one producer, one consumer; the clock stops when the consumer has all N.

counting(N) ->
    Parent = self(),
    C = spawn_link(fun() -> count(Parent, N, 0) end),
    timed(fun() -> produce(C, 1, N), await({counted, N}) end).

produce(_, I, N) when I > N -> ok;
produce(C, I, N) -> C ! {count, I}, produce(C, I + 1, N).

count(Parent, N, N) -> Parent ! {counted, N};
count(Parent, N, Got) -> receive {count, _} -> count(Parent, N, Got + 1) end.

%% --- thread-ring: 1000 processes, one token passed Hops times in all.

-define(RING, 1000).

thread_ring(Hops) ->
    Parent = self(),
    Ring = [spawn_link(fun() -> ring_node(Parent) end) || _ <- lists:seq(1, ?RING)],
    % Link each node to the next before the clock starts.
    [First | _] = Ring,
    lists:foreach(fun({P, Next}) -> P ! {next, Next} end,
                  lists:zip(Ring, tl(Ring) ++ [First])),
    [await({linked, P}) || P <- Ring],
    % The node that receives the token at 0 has seen Hops passes since First got it.
    T = timed(fun() -> First ! {token, Hops}, await(token_done) end),
    [P ! stop || P <- Ring],
    T.

ring_node(Parent) ->
    receive {next, Next} -> Parent ! {linked, self()}, ring_loop(Parent, Next) end.

ring_loop(Parent, Next) ->
    receive
        {token, 0} -> Parent ! token_done, ring_loop(Parent, Next);
        {token, K} -> Next ! {token, K - 1}, ring_loop(Parent, Next);
        stop -> ok
    end.

%% --- fork-join: spawn a child, wait for its init ("ready"), stop it, wait for 'DOWN'; N times.

fork_join(N) -> timed(fun() -> fork_loop(N) end).

fork_loop(0) -> ok;
fork_loop(I) ->
    Parent = self(),
    {Child, Ref} = spawn_monitor(fun() -> child(Parent) end),
    receive {ready, Child} -> ok end,
    Child ! stop, % a normal exit, as a Theater actor stops, rather than a kill
    receive
        {'DOWN', Ref, process, Child, normal} -> fork_loop(I - 1);
        {'DOWN', Ref, process, Child, Reason} -> error({child_failed, Reason})
    end.

child(Parent) ->
    State = <<0:512>>, % the trivial init: a 64-byte state, as Theater's bench actor keeps
    Parent ! {ready, self()},
    receive stop -> byte_size(State) end.

%% The VM's own reports (a crash, "Too many processes") go to stdout by default; stdout is
%% for the JSON lines only.
log_to_stderr() ->
    ok = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h, #{config => #{type => standard_error}}).
