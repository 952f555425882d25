from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda

from rag.langchain import PassageRetriever, as_runnable


def test_retriever_inside_a_chain(make_pipeline):
    pipe, _ = make_pipeline()
    retriever = PassageRetriever(retriever=pipe.retriever, k=2)
    chain = (
        retriever
        | RunnableLambda(lambda docs: {"ctx": " | ".join(d.metadata["doc_id"] for d in docs)})
        | PromptTemplate.from_template("sources: {ctx}")
        | RunnableLambda(lambda p: p.to_string())
    )
    out = chain.invoke("Cohere data centres in Canada")
    assert out.startswith("sources: cohere-mou")


def test_pipeline_runnable_inside_a_chain(make_pipeline):
    pipe, _ = make_pipeline(["The memorandum is not legally binding [1]."])
    chain = as_runnable(pipe) | RunnableLambda(lambda a: a["answer"]) | StrOutputParser()
    out = chain.invoke({"question": "Is the Cohere memorandum legally binding?", "history": []})
    assert "not legally binding [1]" in out
    batch = as_runnable(pipe).batch(["How many workers will be trained in AI skills?"])
    # The scripted default reply is the refusal; with no fitted gate the passages on the subject are quoted.
    assert batch[0]["partial"] is True and batch[0]["refused"] is False
