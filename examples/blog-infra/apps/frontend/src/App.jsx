import { useEffect, useState } from "react";

// Lists the posts served by the backend at /api/posts (same host, routed by the Ingress).
export default function App() {
  const [posts, setPosts] = useState([]);
  const [error, setError] = useState(null);

  useEffect(() => {
    fetch("/api/posts")
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(response.statusText))))
      .then(setPosts)
      .catch((reason) => setError(reason.message));
  }, []);

  return (
    <main>
      <h1>Blog</h1>
      {error && <p role="alert">Could not load posts: {error}</p>}
      {posts.length === 0 && !error && <p>No posts yet.</p>}
      {posts.map((post) => (
        <article key={post.id}>
          <h2>{post.title}</h2>
          <p>{post.body}</p>
        </article>
      ))}
    </main>
  );
}
