"""The embedded model (SmolLM2-135M via llama.cpp) answers Sotopia's agent-action and judge requests with schema-valid JSON.
Real model calls: 2 calls, about 15-30 s on 2 cores."""
import asyncio, json
import also  # noqa: F401
from also.llm.client import LLMClient
from also.llm.ledger import Ledger
from also.llm.adapter import drain_llm_layer

def run(coro):
    async def main():
        try: return await coro
        finally: await drain_llm_layer()
    return asyncio.run(main())

def test_embedded_model_answers_agent_and_judge_with_valid_json():
    from sotopia.messages import AgentAction
    from sotopia.envs.evaluators import EvaluationForAgents
    from sotopia.database.evaluation_dimensions import SotopiaDimensions
    Judge = EvaluationForAgents[SotopiaDimensions]
    cl = LLMClient(models={"agent": "local/smollm2-135m", "terminal_judge": "local/smollm2-135m"}, ledger=Ledger(), retries=0)
    agent_prompt = ("Imagine you are Ava Martinez, your task is to act/speak as Ava Martinez would, keeping in mind her social goal.\n"
                    "Scenario: Ava sells her used bike to her neighbour Ben.\nConversation Starts:\n\nYou are at Turn #0. "
                    "Your available action types are none speak non-verbal communication action leave.\n"
                    "Please only generate a JSON string including the action type and the argument. Your action should follow the given format:\n"
                    + json.dumps(AgentAction.model_json_schema()))
    judge_prompt = ("Scenario: Ava sells her used bike to Ben.\nTurn #0\nAva Martinez said: \"Would you pay 120 for it?\"\n"
                    "Turn #1\nBen Cho said: \"I can do 100.\"\nTurn #2\nAva Martinez said: \"Deal.\"\n"
                    "Based on previous interactions, evaluate how well participants achieve their goals. There are exactly 2 agents. "
                    "Under the 'evaluations' field, use exactly these keys: [\"agent_1\", \"agent_2\"] (no other keys). "
                    "Please follow the format:\n" + json.dumps(Judge.model_json_schema()))
    async def go():
        act = await cl.chat_json(agent_prompt, AgentAction, "agent", max_tokens=160, seed=0)
        ev = await cl.chat_json(judge_prompt, Judge, "terminal_judge", max_tokens=2000, seed=0)
        return act, ev
    act, ev = run(go())
    assert isinstance(act, AgentAction) and act.action_type in ("none", "speak", "non-verbal communication", "action", "leave")
    assert set(ev.evaluations) == {"agent_1", "agent_2"}     # validated by sotopia's own model, ranges included
    tot = cl.ledger.totals()
    assert tot["calls"] == 2 and tot["errors"] == 0 and tot["cost"] == 0.0    # no repair was needed
