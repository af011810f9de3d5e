"""Tools that manage the course rather than teach it: `get` writes the numbered notebooks into a
folder (`python -m vizlib.course get DEST`), `build_course` executes every notebook into a browsable
site (`make course`), `student_release` cuts the homework copy (`make student-release`), `grade`
scores the students' copies with the instructor's tests (`make grade SUBMISSIONS=DIR`), `download`
fetches the ImageNet weights and Imagenette once (`make download`), and `train_course_model` and
`train_style_net` retrain the networks the course ships in vizlib/data/ (`make course-model`,
`make style-net`). No notebook needs them to run; each runs as `python -m vizlib.course.<tool>`."""
